"""`python -m controller` runs the `rollouts` command line."""

import sys

from controller.cli import main

sys.exit(main())
