"""Serve an ASGI app over real HTTP on 127.0.0.1, in a background thread, for tests.

::

    with serve_app(create_app(store)) as base_url:   # "http://127.0.0.1:<free port>"
        httpx.get(base_url + "/info")

The socket is bound before the server starts (no free-port race). The app's
lifespan runs; on exit the server shuts down gracefully and the thread is joined.
The context manager is synchronous, so it also works inside async tests: the
server has its own event loop in its own thread.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import uvicorn

from pyao._http import tcp_listener, uvicorn_config


@contextlib.contextmanager
def serve_app(app: Any, *, host: str = "127.0.0.1", port: int = 0, start_timeout: float = 10.0) -> Iterator[str]:
    """Run ``app`` with uvicorn on ``host`` and ``port`` (0: a free one); yield its base URL."""
    sock = tcp_listener(host, port)
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn_config(app, lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=f"serve_app:{port}", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + start_timeout
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the server thread exited before it started (see the log)")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start within {start_timeout} s")
            time.sleep(0.01)
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=start_timeout)
        sock.close()
