"""The benchmark harness works: the load generator in quick mode against the baseline server.

Behaviour only (every reply is a CALLRESULT, counts > 0); no wall-clock assertions.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `pytest` (not `python -m pytest`) does not put the repo root on sys.path
    sys.path.insert(0, str(ROOT))

from benchmarks.loadgen import (  # noqa: E402
    Template,
    boot_template,
    heartbeat_templates,
    mix_templates,
    quick_config,
    run_load,
)

MIX_ACTIONS = {"BootNotification", "StatusNotification", "StartTransaction", "MeterValues", "StopTransaction"}


@pytest.fixture(scope="module")
def baseline_url() -> Iterator[str]:
    env = dict(os.environ)
    env.pop("PYTHONASYNCIODEBUG", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.baseline_server", "--host", "127.0.0.1", "--port", "0"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    try:
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            assert sel.select(timeout=30), "baseline server did not print READY"
            line = proc.stdout.readline().decode().split()
        assert len(line) == 2 and line[0] == "READY", line
        yield f"ws://127.0.0.1:{int(line[1])}/ocpp"
    finally:
        proc.terminate()
        proc.wait(timeout=15)
        proc.stdout.close()


def _assert_clean(res: dict[str, Any], connections: int = 2) -> None:
    assert res["complete"], res["problems"]
    assert res["connected"] == connections
    assert res["errors"] == {}, (res["errors"], res["callerror_codes"])
    assert res["callerror_codes"] == {}
    assert res["info"]["booted"] == connections
    assert res["info"]["deflate_negotiated"] == connections


def test_templates_are_valid_json_with_substitutions() -> None:
    (hb,) = heartbeat_templates()
    assert json.loads(hb.render("42", "")) == [2, "42", "Heartbeat", {}]
    boot = json.loads(boot_template("LOAD-0-7").render("1", ""))
    assert boot[2] == "BootNotification" and boot[3]["chargePointSerialNumber"] == "LOAD-0-7"
    frames = [json.loads(t.render(str(i), "123")) for i, t in enumerate(mix_templates())]
    assert [f[1] for f in frames] == [str(i) for i in range(len(frames))]
    meter = [f for f in frames if f[2] == "MeterValues"]
    assert len(meter) == 3
    for f in meter:
        assert f[3]["transactionId"] == 123
        sampled = f[3]["meterValue"][0]["sampledValue"]
        assert len(sampled) == 10
        assert f[3]["meterValue"][0]["timestamp"].endswith("Z")
    stop = next(f for f in frames if f[2] == "StopTransaction")
    assert stop[3]["transactionId"] == 123 and stop[3]["timestamp"].endswith("Z")
    assert not Template("Heartbeat", {}).uses_tx


def test_closed_loop_heartbeat(baseline_url: str) -> None:
    res = run_load(quick_config(baseline_url, workload="heartbeat"))
    _assert_clean(res)
    assert res["count"] > 0 and res["rt_per_s"] > 0
    assert set(res["per_action"]) == {"Heartbeat"}
    assert res["latency_ms"]["count"] == res["count"]


def test_closed_loop_mix(baseline_url: str) -> None:
    res = run_load(quick_config(baseline_url, workload="mix"))
    _assert_clean(res)
    assert res["count"] > 0
    assert set(res["per_action"]) <= MIX_ACTIONS
    assert res["info"].get("start_not_accepted", 0) == 0


def test_open_loop(baseline_url: str) -> None:
    res = run_load(quick_config(baseline_url, mode="open", workload="mix", rate=40.0))
    _assert_clean(res)
    assert res["scheduled"] > 0 and res["count"] > 0
    assert 0 <= res["late"] <= res["scheduled"]


def test_idle_connections_are_held_until_released(baseline_url: str) -> None:
    seen: list[int] = []
    res = run_load(
        quick_config(baseline_url, mode="idle", workers=1),
        on_ready=lambda info: seen.append(info["connected"]),
    )
    _assert_clean(res)
    assert seen == [2]
