"""Performance benchmark harness for the CSMS (see BENCHMARKS.md)."""
