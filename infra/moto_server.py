"""Runs moto's server in a background thread, one request at a time, for the runner and tests."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

from werkzeug.serving import BaseWSGIServer, make_server

# Every moto server in a process shares the same global backends, so one lock for all of them.
# Why: moto is not concurrency-safe (a DynamoDB transaction deep-copies its tables and restores
# the copies on failure, silently undoing writes that another thread made in between).
MOTO_LOCK = threading.RLock()


def serialize_in_process_moto() -> None:
    """The same for moto in-process (`mock_aws`): each intercepted request under MOTO_LOCK.
    Handlers still race between requests (as on DynamoDB, whose atomicity is per request), and
    may send requests from several threads (an ingest batch's claims are in flight together)."""
    from moto.core.botocore_stubber import BotocoreStubber

    if getattr(BotocoreStubber.__call__, "serialized", False):
        return
    original = BotocoreStubber.__call__

    def serialized(self: Any, *args: Any, **kwargs: Any) -> Any:
        with MOTO_LOCK:
            return original(self, *args, **kwargs)

    serialized.serialized = True  # type: ignore[attr-defined]
    BotocoreStubber.__call__ = serialized  # type: ignore[method-assign]

StartResponse = Callable[..., Any]


class SerializedApp:
    """WSGI middleware that runs each request, body included, while holding MOTO_LOCK."""

    def __init__(self, app: Callable[[dict[str, Any], StartResponse], Iterable[bytes]]) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        from moto.core.model_instances import reset_model_data

        with MOTO_LOCK:
            result = self.app(environ, start_response)
            try:
                # materialise the body under the lock: moto may build it lazily from live state
                return [b"".join(result)]
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
                # moto keeps every model instance it ever made for its dashboard, including the
                # deep copy of each table that every DynamoDB transaction takes: a long run (make
                # run, a soak) grew by GBs. Nothing here reads that list.
                reset_model_data()


class MotoServer:
    """A moto server on 127.0.0.1 (port 0 picks a free port); `url` is valid after start()."""

    def __init__(self, port: int = 0, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = port
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "start() first"
        return f"http://{self.host}:{self._server.server_port}"

    def start(self) -> str:
        # imported here so that merely importing this module stays cheap
        from moto.moto_server.werkzeug_app import (
            DomainDispatcherApplication,
            MotoRequestHandler,
            create_backend_app,
        )

        class QuietHandler(MotoRequestHandler):
            def log_request(self, *args: Any, **kwargs: Any) -> None:  # one line per AWS call is noise
                pass

        app = SerializedApp(DomainDispatcherApplication(create_backend_app))
        self._server = make_server(self.host, self.port, app, threaded=True, request_handler=QuietHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="moto-server", daemon=True)
        self._thread.start()
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None


def start_moto_server(port: int = 0, host: str = "127.0.0.1") -> tuple[str, Callable[[], None]]:
    """Start a serialized moto server; return its URL (with the real port) and a stop function."""
    server = MotoServer(port=port, host=host)
    url = server.start()
    return url, server.stop
