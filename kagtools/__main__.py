"""`python -m kagtools ...`: the same as the `kagtools` command."""

from kagtools.cli.main import main

raise SystemExit(main())
