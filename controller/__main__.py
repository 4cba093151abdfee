"""`python -m controller` runs the `rollouts` command line."""

import sys

from controller.cli.main import main

sys.exit(main())
