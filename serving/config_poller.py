"""--model_config_file_poll_wait_seconds: a thread that re-reads the model
config file and applies it to the core when its text changed."""

from __future__ import annotations

import logging
import threading

from serving.config.files import ConfigFileError, parse_model_server_config
from serving.core.status import ServingError
from serving.server_core import ServerCore

# The server process's one logger (serving.main logs there too).
log = logging.getLogger("serving")


class ConfigFilePoller:
    """Re-reads --model_config_file every N seconds and applies it when its text changed."""

    def __init__(self, core: ServerCore, path: str, interval_s: float, text: str) -> None:
        self._core = core
        self._path = path
        self._interval = interval_s
        self._last_text = text
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="config-poller", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def poll_once(self) -> None:
        try:
            with open(self._path) as handle:
                text = handle.read()
        except OSError as exc:
            log.error("%s: cannot read config file: %s", self._path, exc)
            return
        if text == self._last_text:
            return
        # Remember the text even if it is bad, so one bad edit logs once.
        self._last_text = text
        try:
            config = parse_model_server_config(self._path, text)
            self._core.reload_config(config)
        except ConfigFileError as exc:
            log.error("%s; keeping the previous config", exc)
        except ServingError as exc:
            log.error("%s: reload failed: %s: %s", self._path, exc.code.name, exc.message)
        else:
            log.info("%s: applied the changed config", self._path)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.poll_once()
