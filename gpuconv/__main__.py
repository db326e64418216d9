"""`python -m gpuconv ...` is the `gpuconv` command."""
from .cli import main

raise SystemExit(main())
