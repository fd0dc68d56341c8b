"""`python -m console.cli`: the same as the `approval-console` command."""

from console.cli.commands import main

raise SystemExit(main())
