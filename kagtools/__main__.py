"""`python -m kagtools ...`: the same as the `kagtools` command."""

from kagtools.cli import main

raise SystemExit(main())
