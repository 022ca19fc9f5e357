"""The embedded Arweave-compatible permanent store: storage + HTTP.

::

    store = open_store("sqlite:///tmp/gw.db")     # or postgresql://…, or https://arweave.net (read-only)
    app = create_app(store)                       # a Starlette app; or create_app(GatewayConfig(...))
    await serve(GatewayConfig(port=4000))         # what `pyao gateway` runs

Uploads (``POST /tx/arweave``) are verified and unbundled, then pending until a
block is sealed: every ``block_seconds`` (config), or on ``POST /mine``.
Limits: an upload body of at most ``GatewayConfig.max_upload_bytes`` (413 above
it), bundles nested at most ``MAX_BUNDLE_DEPTH`` deep, GraphQL pages of at most
``MAX_PAGE`` (100) items, GraphQL bodies of at most 256 KiB.
"""

from __future__ import annotations

from pathlib import Path

from pyao._sql import is_postgres, sqlite_path
from pyao.abc import GatewayStore
from pyao.config import GatewayConfig
from pyao.errors import StoreError
from pyao.gateway._core import MAX_BUNDLE_DEPTH, prepare_upload
from pyao.gateway._model import CHUNK_BYTES, MAX_PAGE

__all__ = [
    "CHUNK_BYTES",
    "MAX_BUNDLE_DEPTH",
    "MAX_PAGE",
    "GatewayStore",
    "create_app",
    "default_db",
    "open_store",
    "prepare_upload",
    "serve",
]


def default_db(config: GatewayConfig) -> str:
    """``config.db``, or a SQLite file under ``config.data_dir``."""
    return config.db or f"sqlite:///{Path(config.data_dir) / 'gateway.db'}"


def open_store(db_url: str) -> GatewayStore:
    """A store for ``sqlite:///path`` (``sqlite://:memory:``), ``postgresql://…`` or ``http(s)://…`` (read-only)."""
    path = sqlite_path(db_url)
    if path is not None:
        from pyao.gateway._sqlite import SqliteStore

        return SqliteStore(path)
    if is_postgres(db_url):
        from pyao.gateway._postgres import PostgresStore

        return PostgresStore(db_url)
    if db_url.startswith(("http://", "https://")):
        from pyao.gateway.remote import RemoteStore

        return RemoteStore(db_url)
    raise StoreError(f"unknown gateway database URL {db_url!r} (sqlite:///…, postgresql://… or http(s)://…)")


def create_app(source: GatewayConfig | GatewayStore, config: GatewayConfig | None = None):
    """The gateway's ASGI app over a store, or over the store ``config.db`` names.

    A store passed in stays the caller's to close; one opened from a config is
    closed when the app shuts down.
    """
    from pyao.gateway._server import build_app

    if isinstance(source, GatewayConfig):
        return build_app(open_store(default_db(source)), source, owns_store=True)
    return build_app(source, config or GatewayConfig(), owns_store=False)


async def serve(config: GatewayConfig) -> None:
    """Run the gateway on ``config.host``:``config.port`` until cancelled."""
    from pyao._http import serve_app

    await serve_app(create_app(config), config.host, config.port)
