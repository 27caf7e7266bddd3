"""``python -m comparisons``: see comparisons.cli."""

import sys

from comparisons.cli import main

sys.exit(main())
