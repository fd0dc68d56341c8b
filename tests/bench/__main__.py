"""`python -m tests.bench [--quick] [--only NAME]...`: run the benchmark suite (see tests/bench/__init__.py)."""

from tests.bench.runner import main

raise SystemExit(main())
