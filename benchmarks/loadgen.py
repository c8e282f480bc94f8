"""OCPP 1.6 load generator: many websocket connections spread over several worker processes.

Every connection (identity ``LOAD-{worker}-{i}``) connects with subprotocol ``ocpp1.6`` and
permessage-deflate, sends a BootNotification, and then -- once every worker is connected -- runs
the workload. Frames are pre-encoded once per template; per call only the message id (and, for the
mix, the connection's transaction id) is spliced in, so the generator stays cheap.

Modes
- ``closed``: each connection keeps exactly one CALL outstanding (send, await reply, repeat).
- ``open``: each connection sends on its own schedule (Poisson or evenly paced) so that the
  aggregate offered load is ``rate`` msg/s; still at most one outstanding CALL per connection. A
  send that is due while the previous CALL is outstanding is counted as *late* and sent as soon as
  the reply arrives; latency is always measured from the *scheduled* send time (no coordinated
  omission).
- ``idle``: connect + boot, then hold the connections until the parent releases them (memory).

Only calls sent inside the measurement window ``[start + warmup, start + warmup + duration)`` are
counted. Every reply must be a CALLRESULT (type 3) with the id of the CALL; CALLERRORs, id
mismatches, timeouts and dropped connections are counted as errors. Latencies are collected in
the workers and the percentiles computed in the parent.

CLI: ``python -m benchmarks.loadgen --url ws://127.0.0.1:9000/ocpp --connections 10 --mode closed
--workload heartbeat --duration 8`` (``--quick``: 2 connections, 1 s). Prints a JSON summary.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import multiprocessing as mp
import queue as queue_mod
import random
import sys
import time
import traceback
from array import array
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from multiprocessing.synchronize import Event as MpEvent
from typing import Any, Literal

import orjson
import psutil
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake
from websockets.typing import Subprotocol

from benchmarks._common import raise_fd_limit

Mode = Literal["closed", "open", "idle"]
Workload = Literal["heartbeat", "mix"]
Arrival = Literal["poisson", "paced"]

OCPP16 = Subprotocol("ocpp1.6")
ID_TAG = "BENCHTAG01"


@dataclass
class LoadConfig:
    """One load run. ``url`` is the OCPP endpoint; ``/{identity}`` is appended per connection."""

    url: str
    connections: int
    mode: Mode = "closed"
    workload: Workload = "heartbeat"
    duration: float = 8.0  # measurement window, seconds
    warmup: float = 1.0  # seconds of load before the window opens
    rate: float = 2000.0  # open loop: aggregate offered load, msg/s
    arrival: Arrival = "poisson"
    workers: int = 2  # generator processes
    connect_concurrency: int = 32  # concurrent handshakes per worker
    connect_attempts: int = 3
    open_timeout: float = 30.0  # per handshake
    grace: float = 10.0  # after the window: how long outstanding replies may take
    connect_phase_timeout: float | None = None  # None: 30 s + 20 ms per connection
    hard_timeout: float | None = None  # whole run; None: derived from the others
    idle_hold: float = 600.0  # idle mode: longest time to hold connections for the parent
    seed: int = 1
    server_pid: int | None = None  # sample this process tree's CPU / RSS over the window
    label: str = ""

    def connect_timeout_total(self) -> float:
        if self.connect_phase_timeout is not None:
            return self.connect_phase_timeout
        return 30.0 + 0.02 * self.connections

    def hard_timeout_total(self) -> float:
        if self.hard_timeout is not None:
            return self.hard_timeout
        work = self.idle_hold if self.mode == "idle" else self.warmup + self.duration + self.grace
        return self.connect_timeout_total() + work + 30.0


def quick_config(url: str, **overrides: Any) -> LoadConfig:
    """Smoke-test preset: 2 connections, 1 s window, short timeouts."""
    params: dict[str, Any] = {
        "url": url,
        "connections": 2,
        "duration": 1.0,
        "warmup": 0.2,
        "grace": 5.0,
        "connect_phase_timeout": 30.0,
        "rate": 20.0,
    }
    params.update(overrides)
    return LoadConfig(**params)


# ---------------------------------------------------------------------------------------------
# Pre-encoded frames
# ---------------------------------------------------------------------------------------------

_MID = "@@MID@@"
_TX = "@@TX@@"


def _ts(base: datetime, seconds: int) -> str:
    return (base + timedelta(seconds=seconds)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Template:
    """A CALL frame encoded once; ``render(mid, tx)`` splices in the message id (and transaction id)."""

    __slots__ = ("action", "_a", "_b", "_c", "uses_tx")

    def __init__(self, action: str, payload: dict[str, Any]) -> None:
        text = json.dumps([2, _MID, action, payload], separators=(",", ":"))
        self.action = action
        self._a, rest = text.split(_MID)
        quoted_tx = json.dumps(_TX)
        self.uses_tx = quoted_tx in rest
        if self.uses_tx:
            self._b, self._c = rest.split(quoted_tx)
        else:
            self._b, self._c = rest, ""

    def render(self, mid: str, tx: str) -> str:
        if self.uses_tx:
            return self._a + mid + self._b + tx + self._c
        return self._a + mid + self._b


def boot_template(identity: str) -> Template:
    return Template(
        "BootNotification",
        {
            "chargePointVendor": "BenchVendor",
            "chargePointModel": "BenchModel-22",
            "chargePointSerialNumber": identity[:25],
            "firmwareVersion": "1.4.2",
        },
    )


def _sampled_values(step: int) -> list[dict[str, str]]:
    energy = 1000 * step
    values: list[dict[str, str]] = [
        {"value": f"{energy}", "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
        {"value": "11040", "measurand": "Power.Active.Import", "unit": "W"},
    ]
    for phase, amps in (("L1", "16.0"), ("L2", "15.9"), ("L3", "16.1")):
        values.append({"value": amps, "measurand": "Current.Import", "phase": phase, "unit": "A"})
    for phase, volts in (("L1-N", "230.1"), ("L2-N", "229.8"), ("L3-N", "230.4")):
        values.append({"value": volts, "measurand": "Voltage", "phase": phase, "unit": "V"})
    values.append({"value": f"{40 + step}", "measurand": "SoC", "location": "EV", "unit": "Percent"})
    values.append({"value": "31.5", "measurand": "Temperature", "location": "Body", "unit": "Celsius"})
    for v in values:
        v.update({"context": "Sample.Periodic", "format": "Raw"})
        v.setdefault("location", "Outlet")
    return values


def heartbeat_templates() -> list[Template]:
    return [Template("Heartbeat", {})]


def mix_templates(base: datetime | None = None) -> list[Template]:
    """One charging session, *without* the per-identity BootNotification that starts each cycle."""
    base = base or datetime.now(UTC).replace(microsecond=0)
    tx_placeholder: Any = _TX
    templates = [
        Template(
            "StatusNotification",
            {"connectorId": 1, "errorCode": "NoError", "status": "Preparing", "timestamp": _ts(base, 0)},
        ),
        Template(
            "StartTransaction",
            {"connectorId": 1, "idTag": ID_TAG, "meterStart": 0, "timestamp": _ts(base, 1)},
        ),
    ]
    for i in (1, 2, 3):
        templates.append(
            Template(
                "MeterValues",
                {
                    "connectorId": 1,
                    "transactionId": tx_placeholder,
                    "meterValue": [{"timestamp": _ts(base, 1 + 60 * i), "sampledValue": _sampled_values(i)}],
                },
            )
        )
    templates.append(
        Template(
            "StopTransaction",
            {
                "transactionId": tx_placeholder,
                "idTag": ID_TAG,
                "meterStop": 3500,
                "timestamp": _ts(base, 240),
                "reason": "Local",
            },
        )
    )
    templates.append(
        Template(
            "StatusNotification",
            {"connectorId": 1, "errorCode": "NoError", "status": "Available", "timestamp": _ts(base, 241)},
        )
    )
    return templates


# Answers to CALLs the server may send us (e.g. GetConfiguration after a boot).
_SERVER_CALL_ANSWERS: dict[str, dict[str, Any]] = {
    "GetConfiguration": {"configurationKey": [], "unknownKey": []},
    "ChangeConfiguration": {"status": "Accepted"},
    "TriggerMessage": {"status": "Rejected"},
    "SetChargingProfile": {"status": "Accepted"},
    "ClearChargingProfile": {"status": "Unknown"},
    "ChangeAvailability": {"status": "Accepted"},
    "RemoteStartTransaction": {"status": "Rejected"},
    "RemoteStopTransaction": {"status": "Rejected"},
    "DataTransfer": {"status": "UnknownVendorId"},
    "Reset": {"status": "Rejected"},
    "UnlockConnector": {"status": "NotSupported"},
    "ClearCache": {"status": "Accepted"},
}


def answer_server_call(msg: list[Any]) -> str:
    unique_id, action = msg[1], msg[2]
    payload = _SERVER_CALL_ANSWERS.get(action)
    if payload is None:
        return orjson.dumps([4, unique_id, "NotSupported", f"{action} not supported", {}]).decode()
    return orjson.dumps([3, unique_id, payload]).decode()


# ---------------------------------------------------------------------------------------------
# Worker process
# ---------------------------------------------------------------------------------------------


@dataclass
class _Conn:
    ws: ClientConnection
    identity: str
    boot: Template
    next_id: int = 0
    reader: asyncio.Task[None] | None = None

    def mid(self) -> str:
        self.next_id += 1
        return str(self.next_id)


@dataclass
class _WorkerState:
    lat: dict[str, array[float]] = field(default_factory=dict)
    count: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    callerror_codes: Counter[str] = field(default_factory=Counter)
    info: Counter[str] = field(default_factory=Counter)
    send_lag: array[float] = field(default_factory=lambda: array("d"))
    done_in_window: int = 0  # CALLRESULTs received inside the window (throughput)
    late: int = 0
    scheduled: int = 0
    censored: int = 0  # open loop: scheduled in the window, no reply by the deadline

    def lat_for(self, action: str) -> array[float]:
        if action not in self.lat:
            self.lat[action] = array("d")
        return self.lat[action]


class _Worker:
    def __init__(self, wid: int, cfg: LoadConfig, nconn: int) -> None:
        self.wid = wid
        self.cfg = cfg
        self.nconn = nconn
        self.st = _WorkerState()
        self.rng = random.Random(cfg.seed * 1000 + wid)
        self.templates = heartbeat_templates() if cfg.workload == "heartbeat" else mix_templates()
        self.win_start = 0.0
        self.end = 0.0
        self.deadline = 0.0
        self.cpu_marks: list[float] = []

    # -- replies ----------------------------------------------------------------------------
    async def _recv_reply(self, ws: ClientConnection) -> Any:
        """Next reply to one of our CALLs; answers CALLs from the server in between."""
        while True:
            raw = await ws.recv()
            try:
                msg = orjson.loads(raw)
            except orjson.JSONDecodeError:
                self.st.errors["bad_json"] += 1
                continue
            if type(msg) is list and len(msg) >= 3 and msg[0] == 2:
                self.st.info["server_calls"] += 1
                await ws.send(answer_server_call(msg))
                continue
            return msg

    def _check(self, msg: Any, mid: str, tpl: Template) -> tuple[bool, str | None]:
        """(is a CALLRESULT for mid, transaction id if this was a StartTransaction reply)."""
        if type(msg) is not list or len(msg) < 3 or msg[1] != mid:
            self.st.errors["mismatch"] += 1
            return False, None
        if msg[0] == 3:
            payload = msg[2]
            if tpl.action == "StartTransaction":
                if not isinstance(payload, dict) or "transactionId" not in payload:
                    self.st.errors["no_transaction_id"] += 1
                    return False, None
                if payload.get("idTagInfo", {}).get("status") != "Accepted":
                    self.st.info["start_not_accepted"] += 1
                return True, str(payload["transactionId"])
            if tpl.action == "BootNotification" and (
                not isinstance(payload, dict) or payload.get("status") != "Accepted"
            ):
                self.st.info["boot_not_accepted"] += 1
            return True, None
        if msg[0] == 4:
            self.st.errors["callerror"] += 1
            self.st.callerror_codes[f"{tpl.action}:{msg[2]}"] += 1
            return False, None
        self.st.errors["mismatch"] += 1
        return False, None

    # -- connect ----------------------------------------------------------------------------
    async def _open_one(self, i: int, sem: asyncio.Semaphore) -> _Conn | None:
        identity = f"LOAD-{self.wid}-{i}"
        url = f"{self.cfg.url.rstrip('/')}/{identity}"
        async with sem:
            ws: ClientConnection | None = None
            for attempt in range(self.cfg.connect_attempts):
                try:
                    ws = await connect(
                        url,
                        subprotocols=[OCPP16],
                        compression="deflate",
                        proxy=None,
                        open_timeout=self.cfg.open_timeout,
                        ping_interval=None,
                        close_timeout=5,
                    )
                    break
                except (OSError, TimeoutError, InvalidHandshake) as exc:
                    self.st.info[f"connect_retry:{type(exc).__name__}"] += 1
                    await asyncio.sleep(0.2 * (attempt + 1))
            if ws is None:
                self.st.errors["connect_failed"] += 1
                return None
            if ws.subprotocol != OCPP16:
                self.st.errors["subprotocol"] += 1
                await ws.close()
                return None
            if any(ext.name == "permessage-deflate" for ext in ws.protocol.extensions):
                self.st.info["deflate_negotiated"] += 1
            conn = _Conn(ws=ws, identity=identity, boot=boot_template(identity))
            mid = conn.mid()
            try:
                async with asyncio.timeout(self.cfg.open_timeout):
                    await ws.send(conn.boot.render(mid, ""))
                    ok, _ = self._check(await self._recv_reply(ws), mid, conn.boot)
            except (TimeoutError, ConnectionClosed):
                ok = False
                self.st.errors["boot_failed"] += 1
            if not ok:
                await ws.close()
                return None
            self.st.info["booted"] += 1
            return conn

    # -- workloads --------------------------------------------------------------------------
    def _steps(self, conn: _Conn) -> list[Template]:
        if self.cfg.workload == "heartbeat":
            return self.templates
        return [conn.boot, *self.templates]

    async def _closed(self, conn: _Conn) -> None:
        ws, st, mono = conn.ws, self.st, time.monotonic
        steps = self._steps(conn)
        lats = [st.lat_for(t.action) for t in steps]
        nsteps, k, tx = len(steps), 0, "0"
        win_start, end = self.win_start, self.end
        outstanding = False
        try:
            async with asyncio.timeout_at(self.deadline):
                while True:
                    t0 = mono()
                    if t0 >= end:
                        break
                    tpl = steps[k]
                    mid = conn.mid()
                    outstanding = True
                    await ws.send(tpl.render(mid, tx))
                    msg = await self._recv_reply(ws)
                    t1 = mono()
                    outstanding = False
                    ok, new_tx = self._check(msg, mid, tpl)
                    if new_tx is not None:
                        tx = new_tx
                    if ok:
                        if t0 >= win_start:
                            lats[k].append(t1 - t0)
                        if win_start <= t1 < end:
                            st.done_in_window += 1
                    k = k + 1 if k + 1 < nsteps else 0
        except TimeoutError:
            if outstanding:
                st.errors["timeout"] += 1
        except ConnectionClosed:
            st.errors["connection_closed"] += 1

    async def _open(self, conn: _Conn, per_conn_rate: float) -> None:
        ws, st, mono, rng = conn.ws, self.st, time.monotonic, self.rng
        steps = self._steps(conn)
        lats = [st.lat_for(t.action) for t in steps]
        nsteps, k, tx = len(steps), 0, "0"
        win_start, end = self.win_start, self.end
        mean_gap = 1.0 / per_conn_rate
        poisson = self.cfg.arrival == "poisson"

        def gap() -> float:
            return rng.expovariate(per_conn_rate) if poisson else mean_gap

        due = self.win_start - self.cfg.warmup + (gap() if poisson else rng.uniform(0.0, mean_gap))
        free_at = 0.0
        outstanding = False
        try:
            async with asyncio.timeout_at(self.deadline):
                while due < end:
                    now = mono()
                    late = False
                    if due > now:
                        await asyncio.sleep(due - now)
                    else:
                        late = free_at > due  # previous CALL was still outstanding when this was due
                    tpl = steps[k]
                    mid = conn.mid()
                    outstanding = True
                    t_send = mono()
                    await ws.send(tpl.render(mid, tx))
                    msg = await self._recv_reply(ws)
                    t1 = mono()
                    outstanding = False
                    free_at = t1
                    ok, new_tx = self._check(msg, mid, tpl)
                    if new_tx is not None:
                        tx = new_tx
                    if ok and win_start <= t1 < end:
                        st.done_in_window += 1
                    if due >= win_start:
                        st.scheduled += 1
                        if late:
                            st.late += 1
                        else:
                            st.send_lag.append(t_send - due)
                        if ok:
                            lats[k].append(t1 - due)  # from the scheduled time
                    k = k + 1 if k + 1 < nsteps else 0
                    due += gap()
        except TimeoutError:
            if outstanding:
                st.errors["timeout"] += 1
            # Overload: CALLs scheduled in the window that got no reply by the deadline (the outstanding
            # one and those never sent) are kept in the latency set as censored values, deadline - due,
            # so an overloaded server cannot improve its percentiles by not answering.
            first = True
            while due < end:
                if due >= win_start:
                    st.scheduled += 1
                    st.censored += 1
                    if not (first and outstanding):
                        st.late += 1
                    lats[k].append(self.deadline - due)
                first = False
                k = k + 1 if k + 1 < nsteps else 0
                due += gap()
        except ConnectionClosed:
            st.errors["connection_closed"] += 1

    async def _idle_reader(self, conn: _Conn) -> None:
        """Idle connections still answer server CALLs."""
        try:
            async for raw in conn.ws:
                try:
                    msg = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    continue
                if type(msg) is list and len(msg) >= 3 and msg[0] == 2:
                    self.st.info["server_calls"] += 1
                    await conn.ws.send(answer_server_call(msg))
        except ConnectionClosed:
            self.st.errors["connection_closed"] += 1

    # -- main -------------------------------------------------------------------------------
    async def run(self, out: Any, go: MpEvent, start_value: Any) -> None:
        loop = asyncio.get_running_loop()
        t_connect = time.monotonic()
        sem = asyncio.Semaphore(self.cfg.connect_concurrency)
        opened = await asyncio.gather(*(self._open_one(i, sem) for i in range(self.nconn)))
        conns = [c for c in opened if c is not None]
        connect_seconds = time.monotonic() - t_connect
        if self.cfg.mode == "idle":
            for c in conns:
                c.reader = asyncio.create_task(self._idle_reader(c))
        out.put(("ready", self.wid, {"connected": len(conns), "connect_seconds": connect_seconds}))

        timeout = self.cfg.hard_timeout_total()
        released = await loop.run_in_executor(None, go.wait, timeout)
        start_at = float(start_value.value)
        window: dict[str, float] = {}
        if released and start_at > 0 and self.cfg.mode != "idle":
            self.win_start = start_at + self.cfg.warmup
            self.end = self.win_start + self.cfg.duration
            self.deadline = self.end + self.cfg.grace
            delay = max(0.0, start_at - time.monotonic())
            await asyncio.sleep(delay)
            cpu = time.process_time

            def mark() -> None:
                self.cpu_marks.append(cpu())

            loop.call_at(self.win_start, mark)
            loop.call_at(self.end, mark)
            if self.cfg.mode == "closed":
                await asyncio.gather(*(self._closed(c) for c in conns))
            else:
                per_conn = self.cfg.rate / max(1, self.cfg.connections)
                await asyncio.gather(*(self._open(c, per_conn) for c in conns))
            if len(self.cpu_marks) == 2:
                window["cpu_seconds"] = self.cpu_marks[1] - self.cpu_marks[0]
        closers = []
        for c in conns:
            if c.reader is not None:
                c.reader.cancel()
            closers.append(c.ws.close())
        await asyncio.gather(*closers, return_exceptions=True)
        for c in conns:
            if c.reader is not None:
                await asyncio.gather(c.reader, return_exceptions=True)
        out.put(("result", self.wid, self._export(len(conns), connect_seconds, window)))

    def _export(self, connected: int, connect_seconds: float, window: dict[str, float]) -> dict[str, Any]:
        st = self.st
        return {
            "connected": connected,
            "connect_seconds": connect_seconds,
            "lat": {k: v.tobytes() for k, v in st.lat.items()},
            "send_lag": st.send_lag.tobytes(),
            "errors": dict(st.errors),
            "callerror_codes": dict(st.callerror_codes),
            "info": dict(st.info),
            "late": st.late,
            "done_in_window": st.done_in_window,
            "censored": st.censored,
            "scheduled": st.scheduled,
            **window,
        }


def _worker_entry(wid: int, cfg: LoadConfig, nconn: int, out: Any, go: MpEvent, start_value: Any) -> None:
    raise_fd_limit()
    try:
        asyncio.run(_Worker(wid, cfg, nconn).run(out, go, start_value))
    except BaseException:  # report, never hang the parent
        out.put(("error", wid, traceback.format_exc()))


# ---------------------------------------------------------------------------------------------
# Parent side
# ---------------------------------------------------------------------------------------------


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of an ascending list (NaN if empty)."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(p / 100.0 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def latency_summary(values_s: list[float]) -> dict[str, float]:
    """Percentiles in milliseconds."""
    v = sorted(values_s)
    if not v:
        return {"count": 0}
    return {
        "count": len(v),
        "mean": 1000 * sum(v) / len(v),
        "p50": 1000 * percentile(v, 50),
        "p90": 1000 * percentile(v, 90),
        "p99": 1000 * percentile(v, 99),
        "p999": 1000 * percentile(v, 99.9),
        "max": 1000 * v[-1],
    }


def process_tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def tree_cpu_seconds(pid: int) -> float:
    total = 0.0
    for p in process_tree(pid):
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def system_busy_seconds() -> float:
    """CPU seconds spent not idle, summed over all CPUs, since boot."""
    t = psutil.cpu_times()
    return float(t.user + t.nice + t.system + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0))


def tree_rss_bytes(pid: int) -> int:
    total = 0
    for p in process_tree(pid):
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def _split(n: int, parts: int) -> list[int]:
    return [n // parts + (1 if i < n % parts else 0) for i in range(parts)]


def run_load(cfg: LoadConfig, on_ready: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Run one load scenario in worker processes and return the aggregated result.

    ``on_ready`` is called in the parent once every connection is open and booted (before the
    window starts; in idle mode, while the connections are held).
    """
    raise_fd_limit()
    t_begin = time.monotonic()
    nworkers = max(1, min(cfg.workers, cfg.connections))
    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    go = ctx.Event()
    start_value = ctx.Value("d", 0.0)
    shares = _split(cfg.connections, nworkers)
    procs = [
        ctx.Process(target=_worker_entry, args=(w, cfg, shares[w], out, go, start_value), daemon=True)
        for w in range(nworkers)
    ]
    for p in procs:
        p.start()
    hard_deadline = t_begin + cfg.hard_timeout_total()
    problems: list[str] = []
    ready: dict[int, dict[str, Any]] = {}
    results: dict[int, dict[str, Any]] = {}

    def take(deadline: float) -> tuple[str, int, Any] | None:
        """Next worker message; None on timeout or once a worker died without reporting."""
        while True:
            try:
                item: tuple[str, int, Any] = out.get(timeout=max(0.01, min(0.5, deadline - time.monotonic())))
                return item
            except queue_mod.Empty:
                dead = [p for w, p in enumerate(procs) if p.exitcode is not None and w not in results]
                if dead:
                    problems.append(f"worker pid {dead[0].pid} exited with code {dead[0].exitcode} unreported")
                    return None
                if time.monotonic() >= deadline:
                    return None

    connect_deadline = t_begin + cfg.connect_timeout_total()
    while len(ready) < nworkers:
        item = take(connect_deadline)
        if item is None:
            problems.append(f"connect phase ended with {len(ready)}/{nworkers} workers ready")
            break
        kind, wid, data = item
        if kind == "ready":
            ready[wid] = data
        elif kind == "error":
            problems.append(f"worker {wid} failed:\n{data}")
            break

    server_window: dict[str, float] = {}
    connected = sum(r["connected"] for r in ready.values())
    if problems:
        start_value.value = -1.0
        go.set()
    elif cfg.mode == "idle":
        try:
            if on_ready is not None:
                on_ready({"connected": connected, "ready": ready})
        except Exception as exc:  # never leave the workers waiting
            problems.append(f"on_ready failed: {exc!r}")
        start_value.value = time.monotonic()
        go.set()
    else:
        try:
            if on_ready is not None:
                on_ready({"connected": connected, "ready": ready})
        except Exception as exc:
            problems.append(f"on_ready failed: {exc!r}")
        start_at = time.monotonic() + 0.3
        start_value.value = start_at
        go.set()
        win_start = start_at + cfg.warmup
        win_end = win_start + cfg.duration
        try:
            time.sleep(max(0.0, win_start - time.monotonic()))
            busy0 = system_busy_seconds()
            cpu0 = tree_cpu_seconds(cfg.server_pid) if cfg.server_pid is not None else 0.0
            t0 = time.monotonic()
            time.sleep(max(0.0, win_end - time.monotonic()))
            busy1 = system_busy_seconds()
            cpu1 = tree_cpu_seconds(cfg.server_pid) if cfg.server_pid is not None else 0.0
            t1 = time.monotonic()
            server_window = {"wall_seconds": t1 - t0, "system_busy_seconds": busy1 - busy0}
            if cfg.server_pid is not None:
                server_window["server_cpu_seconds"] = cpu1 - cpu0
                server_window["server_rss_bytes_end"] = float(tree_rss_bytes(cfg.server_pid))
        except psutil.Error as exc:
            problems.append(f"server sampling failed: {exc!r}")

    while len(results) < len(ready) and not any(p.startswith("worker") for p in problems):
        item = take(hard_deadline)
        if item is None:
            problems.append(f"hard timeout: {len(results)}/{len(ready)} workers reported")
            break
        kind, wid, data = item
        if kind == "result":
            results[wid] = data
        elif kind == "error":
            problems.append(f"worker {wid} failed:\n{data}")

    for p in procs:
        p.join(timeout=max(1.0, min(10.0, hard_deadline - time.monotonic())))
    for p in procs:
        if p.is_alive():
            p.terminate()
            p.join(timeout=5)
            problems.append(f"worker pid {p.pid} had to be terminated")

    summary = aggregate(cfg, list(results.values()), server_window)
    summary["connected"] = connected
    summary["problems"] = problems
    summary["complete"] = not problems and len(results) == nworkers
    summary["elapsed_seconds"] = time.monotonic() - t_begin
    return summary


def aggregate(cfg: LoadConfig, results: list[dict[str, Any]], server_window: dict[str, float]) -> dict[str, Any]:
    all_lat: list[float] = []
    per_action: dict[str, list[float]] = {}
    send_lag: list[float] = []
    errors: Counter[str] = Counter()
    codes: Counter[str] = Counter()
    info: Counter[str] = Counter()
    late = scheduled = done = censored = 0
    gen_cpu: list[float] = []
    gen_cpu_seconds = 0.0
    for r in results:
        for action, raw in r["lat"].items():
            values = array("d")
            values.frombytes(raw)
            per_action.setdefault(action, []).extend(values)
            all_lat.extend(values)
        lag = array("d")
        lag.frombytes(r["send_lag"])
        send_lag.extend(lag)
        errors.update(r["errors"])
        codes.update(r["callerror_codes"])
        info.update(r["info"])
        late += r["late"]
        done += r["done_in_window"]
        censored += r["censored"]
        scheduled += r["scheduled"]
        if "cpu_seconds" in r and cfg.duration > 0:
            gen_cpu.append(100.0 * r["cpu_seconds"] / cfg.duration)
            gen_cpu_seconds += r["cpu_seconds"]
    count = len(all_lat)
    summary: dict[str, Any] = {
        "label": cfg.label,
        "config": {k: v for k, v in asdict(cfg).items() if k != "server_pid"},
        "count": count,
        "errors": dict(errors),
        "error_total": sum(errors.values()),
        "callerror_codes": dict(codes),
        "info": dict(info),
        "connect_seconds": max((r["connect_seconds"] for r in results), default=math.nan),
        "generator_cpu_pct": gen_cpu,
    }
    if cfg.mode != "idle":
        # Throughput: CALLRESULTs that arrived inside the window. Latencies: CALLs sent (closed) or
        # scheduled (open) inside the window, whenever their reply arrived.
        summary["rt_per_s"] = done / cfg.duration if cfg.duration > 0 else math.nan
        summary["latency_ms"] = latency_summary(all_lat)
        summary["per_action"] = {
            a: {k: v for k, v in latency_summary(vals).items() if k in ("count", "p50", "p99")}
            for a, vals in sorted(per_action.items())
        }
    if cfg.mode == "open":
        summary["offered_rate"] = cfg.rate
        summary["scheduled"] = scheduled
        summary["late"] = late
        summary["censored"] = censored
        summary["late_fraction"] = late / scheduled if scheduled else math.nan
        summary["send_lag_ms"] = {
            k: v for k, v in latency_summary(send_lag).items() if k in ("count", "p50", "p99", "max")
        }
    if server_window:
        summary.update(server_window)
        wall = server_window["wall_seconds"]
        server_cpu = server_window.get("server_cpu_seconds")
        if server_cpu is not None:
            if done:
                summary["server_cpu_us_per_rt"] = 1e6 * server_cpu / done
            summary["server_cpu_pct"] = 100.0 * server_cpu / wall
            # Everything else on the box during the window (other users' jobs on a shared machine), in
            # % of one core. Approximate: the parent and the kernel's softirq work are included.
            other = server_window["system_busy_seconds"] - server_cpu - gen_cpu_seconds
            summary["other_cpu_pct"] = max(0.0, 100.0 * other / wall)
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="OCPP 1.6 load generator (see module docstring)")
    parser.add_argument("--url", required=True, help="OCPP endpoint, e.g. ws://127.0.0.1:9000/ocpp")
    parser.add_argument("--connections", type=int, default=10)
    parser.add_argument("--mode", choices=["closed", "open", "idle"], default="closed")
    parser.add_argument("--workload", choices=["heartbeat", "mix"], default="heartbeat")
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--rate", type=float, default=2000.0, help="open loop: aggregate msg/s")
    parser.add_argument("--arrival", choices=["poisson", "paced"], default="poisson")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--server-pid", type=int, default=None)
    parser.add_argument("--hold", type=float, default=2.0, help="idle mode: seconds to hold")
    parser.add_argument("--quick", action="store_true", help="2 connections, 1 s")
    args = parser.parse_args(argv)
    common: dict[str, Any] = {
        "mode": args.mode,
        "workload": args.workload,
        "arrival": args.arrival,
        "workers": args.workers,
        "server_pid": args.server_pid,
    }
    if args.quick:
        cfg = quick_config(args.url, **common)
    else:
        cfg = LoadConfig(
            url=args.url,
            connections=args.connections,
            duration=args.duration,
            warmup=args.warmup,
            rate=args.rate,
            **common,
        )
    hold: Callable[[dict[str, Any]], None] | None = None
    if cfg.mode == "idle":

        def hold(_: dict[str, Any]) -> None:
            time.sleep(args.hold)

    summary = run_load(cfg, on_ready=hold)
    print(json.dumps(summary, indent=2, default=str))
    return 0 if summary["complete"] and summary["error_total"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
