"""``python -m honed.cli`` (what ``torchrun -m honed.cli ...`` runs)."""

import sys

from honed.cli.main import main

sys.exit(main())
