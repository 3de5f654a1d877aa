"""``python -m brb``: the ``brb`` console script (packed runs start their child runs this way)."""

import sys

from brb.cli import main

if __name__ == "__main__":
    sys.exit(main())
