"""The pricing benchmark works in quick mode: every priced session gets its cost stored, the baseline none."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `pytest` (not `python -m pytest`) does not put the repo root on sys.path
    sys.path.insert(0, str(ROOT))

from benchmarks.run_money import QUICK, render, run  # noqa: E402


async def test_quick_money_benchmark_costs_every_priced_session() -> None:
    """run_money --quick: the priced mode stores one breakdown per session; the report names both modes."""
    results = await run(QUICK)
    baseline, priced = results
    assert (baseline.mode, priced.mode) == ("baseline", "priced")
    assert priced.sessions == QUICK.stations * QUICK.sessions == priced.costs_stored
    assert baseline.costs_stored == 0
    report = render(QUICK, results, "run_money --quick")
    assert "| priced | 25 |" in report and report.startswith("<!-- money:begin -->")
