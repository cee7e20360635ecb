"""The stand-in servers' one way to run: on 127.0.0.1, on a daemon thread, for the length of a `with`."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import ThreadingHTTPServer


@contextmanager
def running(server: ThreadingHTTPServer, before_stop: Callable[[], None] | None = None) -> Iterator[None]:
    """Serve until the block ends. `before_stop` releases handlers that would otherwise hold a response
    open (a stream that never ends), since shutdown waits for the serving loop, not for them."""
    # A short poll: shutdown waits up to one poll interval, and the suite starts hundreds of these.
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield
    finally:
        if before_stop is not None:
            before_stop()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
