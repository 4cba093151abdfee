"""The one base of every error that stops the server from starting.

A bad flag, SSL config, batching parameters file, model or monitoring config
file, or admin token file raises a subclass whose message names the flag or the
file (and field or line); `serving.main` catches this base once, prints the
message and exits (2 with the usage for a bad command line, else 1).
"""

from __future__ import annotations


class StartupError(Exception):
    """The server cannot start as configured; the message says where and why."""
