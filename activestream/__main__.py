"""``python -m activestream``: the same as the ``activestream`` command."""

import sys

from activestream.cli import main

sys.exit(main())
