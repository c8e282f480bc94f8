"""The pricing benchmark works in quick mode: every priced session gets its cost stored (batched and one at a time),
the baseline none."""

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
    baseline, single, priced = results
    assert (baseline.mode, single.mode, priced.mode) == ("baseline", "priced, one at a time", "priced")
    assert priced.sessions == QUICK.stations * QUICK.sessions == priced.costs_stored == single.costs_stored
    assert baseline.costs_stored == 0
    # One at a time commits at least one batch per report (start, status, end of each session); batching fewer.
    assert single.batches >= 3 * single.sessions and 0 < priced.batches <= single.batches
    report = render(QUICK, results, "run_money --quick")
    assert "| priced | 25 |" in report and report.startswith("<!-- money:begin -->")
