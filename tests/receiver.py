"""A real HTTP receiver on 127.0.0.1 for notification tests: records every POST.

`hold()` makes it a receiver that hangs: each POST is read and then left unanswered
until `release()`, as a receiver behind a stuck proxy does.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Receiver:
    """An HTTP endpoint on 127.0.0.1 that records every POST (headers lower-cased)."""

    def __init__(self) -> None:
        self.posts: list[tuple[dict[str, str], bytes]] = []
        self.waiting = 0  # POSTs read and not yet answered (while held)
        lock = threading.Lock()
        self._answer = threading.Event()
        self._answer.set()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with lock:
                    receiver.posts.append(({k.lower(): v for k, v in self.headers.items()},
                                           body))
                    receiver.waiting += 1
                receiver._answer.wait(120)  # bounded: a test's teardown releases it
                with lock:
                    receiver.waiting -= 1
                self.send_response(204)
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def hold(self) -> None:
        """Leave every POST from now on unanswered until `release`."""
        self._answer.clear()

    def release(self) -> None:
        self._answer.set()

    def documents(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in list(self.posts)]

    def events(self) -> list[str]:
        return [str(d.get("event", "")) for d in self.documents()]

    def stop(self) -> None:
        self.release()
        self.server.shutdown()
        self.server.server_close()
