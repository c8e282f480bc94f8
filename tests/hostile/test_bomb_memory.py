"""Deflate bombs against the real server process: the resident memory (RSS), not only the Python heap, stays bounded.

Anchor test #14: a frame over ``max_frame_bytes``, or a deflate bomb, closes with 1009 and peak memory stays within
2 x ``max_frame_bytes``. Measured on a ``csms serve`` process with its production garbage-collector tuning, from
/proc (VmHWM, the peak RSS, reset through clear_refs before each bomb).
"""

from __future__ import annotations

import asyncio
import json
import sys
import zlib
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

from benchmarks.resilience.server import CsmsProcess
from tests.hostile.attack import masked_frame

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

MiB = 1 << 20
BOMBS = 20
INFLATED = 256 * MiB  # from ~255 KiB on the wire; deflate cannot compress much better than 1,000:1


def _kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"{key} not in /proc/{pid}/status")


def _bomb(window_bits: int) -> bytes:
    """One RFC 7692 message: a DataTransfer CALL whose data is INFLATED bytes of "A", compressed."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -window_bits)
    parts = [compressor.compress(b'[2,"b1","DataTransfer",{"vendorId":"x","data":"')]
    chunk = b"A" * MiB
    parts += [compressor.compress(chunk) for _ in range(INFLATED // MiB)]
    parts.append(compressor.flush(zlib.Z_SYNC_FLUSH))
    return b"".join(parts)[:-4]  # RFC 7692 §7.2.1: the sender removes the empty block's tail


async def test_repeated_deflate_bombs_keep_the_server_rss_flat(tmp_path: Path) -> None:
    """20 bombs of 256 MiB each: every one closes with 1009, none raises the peak RSS by more than 2 x the frame
    limit, and the RSS after the last is within 4 MiB of the RSS after the first (each used to keep ~1.6 MiB: the
    inflated data, held by a reference cycle that the server's sparse garbage collection left alone)."""
    server = CsmsProcess(tmp_path)
    await asyncio.to_thread(server.start)
    try:
        pid, limit = server.pid, 1_048_576  # ocpp.max_frame_bytes default
        body: bytes | None = None
        rss_after: list[int] = []
        for _ in range(BOMBS):
            station = await connect(
                f"{server.url}/BOMB-1", subprotocols=[Subprotocol("ocpp1.6")], compression="deflate"
            )
            await station.send(
                json.dumps([2, "b", "BootNotification", {"chargePointVendor": "x", "chargePointModel": "y"}])
            )
            assert json.loads(await station.recv())[2]["status"] == "Accepted"
            window_bits = getattr(station.protocol.extensions[0], "remote_max_window_bits", None) or 15
            body = body or _bomb(window_bits)
            await asyncio.sleep(0.2)
            Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM := VmRSS
            before = _kib(pid, "VmRSS")
            station.transport.write(masked_frame(body, rsv1=True))
            await asyncio.wait_for(station.wait_closed(), 30)
            assert station.close_code == 1009
            peak_growth = _kib(pid, "VmHWM") - before
            assert peak_growth <= 2 * limit, f"peak RSS rose {peak_growth / MiB:.2f} MiB for one bomb"
            await asyncio.sleep(1.5)  # the server's coalesced collection after a failed parser runs after 1 s
            rss_after.append(_kib(pid, "VmRSS"))
        growth = rss_after[-1] - rss_after[0]
        assert growth <= 4 * MiB, f"RSS grew {growth / MiB:.1f} MiB over {BOMBS - 1} bombs: {rss_after}"
        assert server.error_lines() == []
    finally:
        await asyncio.to_thread(server.stop)
