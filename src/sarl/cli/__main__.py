"""``python -m sarl.cli ...`` (the same as ``python -m sarl`` and the ``sarl`` command)."""

import sys

from sarl.cli import main

sys.exit(main())
