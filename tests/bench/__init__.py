"""The benchmark suite: what the operator feels, measured on the app's real code paths, against targets.

Run it with `make bench` or `python -m tests.bench [--quick] [--only NAME]`; it prints a table and writes
bench-results.json. One module per group of figures (screen, footprint, decisions, polling, pending); none is named
test_*, so pytest never collects them. Timings live here, never in the tests.
"""
