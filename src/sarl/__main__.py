"""``python -m sarl ...`` (also under ``torchrun`` / ``accelerate launch``) runs the ``sarl`` command."""

import sys

from sarl.cli import main

if __name__ == "__main__":
    sys.exit(main())
