"""``python -m devtools.demo``: see devtools/demo/run.py."""

import sys

from devtools.demo.run import main

sys.exit(main())
