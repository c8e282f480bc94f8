"""Server memory per idle connection.

Opens N connections (``ocpp1.6``, permessage-deflate negotiated), boots each, holds them idle and
measures the RSS of the server's process tree (psutil): ``(RSS with N idle booted connections -
RSS before) / N``. "Before" is taken after a small warm-up (a few connections boot and close) so
lazily-loaded code and schema caches are not charged to the connections.

CLI: ``python -m benchmarks.memory --url ws://127.0.0.1:9000/ocpp --server-pid PID --connections 5000``
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from benchmarks._common import raise_fd_limit
from benchmarks.loadgen import LoadConfig, run_load, tree_rss_bytes


def measure_idle_memory(
    url: str,
    server_pid: int,
    connections: int,
    *,
    workers: int = 2,
    settle: float = 3.0,
    warmup_connections: int = 10,
) -> dict[str, Any]:
    raise_fd_limit()
    warm = run_load(
        LoadConfig(url=url, connections=warmup_connections, mode="idle", workers=1, label="memory-warmup"),
        on_ready=lambda _: time.sleep(0.2),
    )
    time.sleep(1.0)
    before = tree_rss_bytes(server_pid)
    held: dict[str, Any] = {}

    def on_ready(info: dict[str, Any]) -> None:
        time.sleep(settle)
        samples = []
        for _ in range(3):
            samples.append(tree_rss_bytes(server_pid))
            time.sleep(0.5)
        held["rss_samples"] = samples
        held["connected"] = info["connected"]

    cfg = LoadConfig(url=url, connections=connections, mode="idle", workers=workers, label="memory")
    result = run_load(cfg, on_ready=on_ready)
    time.sleep(1.0)
    after_close = tree_rss_bytes(server_pid)
    connected = int(held.get("connected", 0))
    after = max(held.get("rss_samples", [0]))
    per_conn = (after - before) / connected if connected else float("nan")
    return {
        "connections": connections,
        "connected": connected,
        "deflate_negotiated": result["info"].get("deflate_negotiated", 0),
        "booted": result["info"].get("booted", 0),
        "rss_before_bytes": before,
        "rss_idle_bytes": after,
        "rss_samples": held.get("rss_samples", []),
        "rss_after_close_bytes": after_close,
        "bytes_per_connection": per_conn,
        "kb_per_connection": per_conn / 1024,
        "connect_seconds": result["connect_seconds"],
        "errors": result["errors"],
        "error_total": result["error_total"] + warm["error_total"],
        "problems": warm["problems"] + result["problems"],
        "complete": bool(result["complete"] and warm["complete"] and connected),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Server RSS per idle booted connection")
    parser.add_argument("--url", required=True)
    parser.add_argument("--server-pid", type=int, required=True)
    parser.add_argument("--connections", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--settle", type=float, default=3.0)
    args = parser.parse_args(argv)
    res = measure_idle_memory(args.url, args.server_pid, args.connections, workers=args.workers, settle=args.settle)
    print(json.dumps(res, indent=2))
    return 0 if res["complete"] and res["error_total"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
