"""The analytics benchmark works in quick mode: every report runs over a populated database and the naive
baseline's buckets equal the SQL aggregation's. Behaviour only; no wall-clock assertions."""

from __future__ import annotations

from pathlib import Path

from tests.benchmarks.quick_run import KEPT, run_quick


def test_quick_run_agrees_with_the_naive_baseline_and_writes_its_section(tmp_path: Path) -> None:
    """`run_analytics --quick` exits 0 (SQL buckets == Python buckets) and writes its section between its markers."""
    report = tmp_path / "BENCHMARKS.md"
    run_quick("run_analytics", report, timeout=60)
    text = report.read_text()
    assert text.startswith(KEPT)
    assert "<!-- live:begin -->" in text and "<!-- live:end -->" in text
    assert "500 sessions" in text and "equal ours" in text
    section = text.split("<!-- live:begin -->")[1]
    assert section.count("| load (peak vs limit") == 1 and " ms |" in section
