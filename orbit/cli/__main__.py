"""`python -m orbit.cli ...` is the `orbit` command line."""

from orbit.cli import main

raise SystemExit(main())
