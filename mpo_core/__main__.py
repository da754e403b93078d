"""``python -m mpo_core``: see :mod:`mpo_core.cli`."""
import sys

from .cli import main

sys.exit(main())
