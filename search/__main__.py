"""`python -m search ...`: the command line (see search/cli.py)."""

from search.cli import main

raise SystemExit(main())
