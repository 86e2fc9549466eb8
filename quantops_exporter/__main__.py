"""`python -m quantops_exporter` is the same as the `quantops-exporter` command."""

from quantops_exporter.cli import main

raise SystemExit(main())
