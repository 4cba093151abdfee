"""`python -m serving`: run the model server."""

from __future__ import annotations

import signal
import sys

if __name__ == "__main__":
    try:
        # Importing TensorFlow takes seconds; a Ctrl-C then is an ordinary stop.
        from serving.main import main
    except KeyboardInterrupt:
        print("Start-up stopped by SIGINT while loading the server", file=sys.stderr)
        sys.exit(128 + signal.SIGINT)
    sys.exit(main())
