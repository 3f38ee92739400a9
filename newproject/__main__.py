"""`python -m newproject --name NAME ...` (what `make new-project` runs)."""

import sys

from newproject.cli import main

sys.exit(main())
