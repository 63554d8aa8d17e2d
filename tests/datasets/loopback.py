"""A loopback HTTP server for download tests: serves bytes the tests build, on 127.0.0.1.

Nothing here reaches the network: a ThreadingHTTPServer on an ephemeral port serves
``Loopback.files``, honours Range requests (206), and can drop the first connection part-way
or ignore Range. The ``server`` fixture is registered in ``tests/datasets/conftest.py``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

TIMEOUT = 5.0  # seconds; every client and server socket is bounded by it


@dataclass
class Loopback:
    """What the test server serves and what it saw."""

    files: dict[str, bytes] = field(default_factory=dict)
    drop_after: int | None = None  # close the first GET after this many body bytes
    ignore_range: bool = False
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    base: str = ""

    def url(self, name: str) -> str:
        return f"{self.base}/{name}"


def _handler(state: Loopback) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        timeout = TIMEOUT

        def log_message(self, *args: object) -> None:  # keep pytest output clean
            pass

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            name = self.path.lstrip("/")
            rng = self.headers.get("Range")
            state.requests.append((name, rng))
            data = state.files.get(name)
            if data is None:
                self.send_error(404)
                return
            start = 0
            if rng and not state.ignore_range:
                start = int(rng.split("=")[1].split("-")[0])
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            body = data[start:]
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if state.drop_after is not None:
                cut, state.drop_after = state.drop_after, None
                self.wfile.write(body[:cut])
                self.close_connection = True
                return
            self.wfile.write(body)

    return Handler


@pytest.fixture
def server() -> Iterator[Loopback]:
    """Serve ``state.files`` on 127.0.0.1 at an ephemeral port for one test."""
    state = Loopback()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    httpd.daemon_threads = True
    state.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(TIMEOUT)
