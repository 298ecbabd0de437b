"""``python -m freqrex_audit.cli``: the ``freqrex-audit`` command."""

import sys

from .main import main

sys.exit(main())
