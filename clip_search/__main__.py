"""``python -m clip_search``: see clip_search.cli."""

import sys

from clip_search.cli import main

sys.exit(main())
