"""``python -m evo`` is the ``evo`` command."""

import sys

from evo.app.cli import main

sys.exit(main())
