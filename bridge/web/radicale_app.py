"""Build the Radicale WSGI application wired to calbridge's storage, auth and rights plugins.

The auth and rights plugins are built here, once, and handed to Radicale as ready objects, so
that the /dav gate decides who may write exactly as Radicale does (same credential cache).
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Any

import radicale
from radicale import config as radicale_config
from radicale import types

from bridge.settings import Settings
from bridge.storage_plugin.auth import SqlAuth
from bridge.storage_plugin.rights import SqlRights
from bridge.storage_plugin.storage import SqlStorage
from bridge.store.db import Store
from bridge.store.errors import ItemRefused
from bridge.web.dav_refusal import radicale_refusal


class _Radicale(radicale.Application):
    """Radicale whose item writes that the store's origin rule refuses (a client over a mirrored
    item or a booking's event, by PUT, DELETE or MOVE) answer 403 need-privileges, not 500."""

    def do_PUT(self, environ: types.WSGIEnviron, base_prefix: str, path: str, user: str,
               user_groups: set[str], request_info: dict[str, Any]) -> types.WSGIResponse:
        try:
            return super().do_PUT(environ, base_prefix, path, user, user_groups, request_info)
        except ItemRefused as refused:
            return radicale_refusal(refused, environ, base_prefix, path)

    def do_DELETE(self, environ: types.WSGIEnviron, base_prefix: str, path: str, user: str,
                  user_groups: set[str], request_info: dict[str, Any]) -> types.WSGIResponse:
        try:
            return super().do_DELETE(environ, base_prefix, path, user, user_groups, request_info)
        except ItemRefused as refused:
            return radicale_refusal(refused, environ, base_prefix, path)

    def do_MOVE(self, environ: types.WSGIEnviron, base_prefix: str, path: str, user: str,
                user_groups: set[str], request_info: dict[str, Any]) -> types.WSGIResponse:
        try:
            return super().do_MOVE(environ, base_prefix, path, user, user_groups, request_info)
        except ItemRefused as refused:
            return radicale_refusal(refused, environ, base_prefix, path)


@dataclass(frozen=True)
class RadicaleParts:
    app: radicale.Application
    auth: SqlAuth
    rights: SqlRights


def build_radicale(settings: Settings, store: Store) -> RadicaleParts:
    """Radicale with our plugins passed as callables (so they share one Store; no globals)."""
    configuration = radicale_config.load()
    configuration.update(
        {
            "server": {
                "max_content_length": str(settings.max_body_bytes),
                "max_resource_size": str(int(settings.max_body_bytes * 0.8)),
            },
            "auth": {
                "type": lambda configuration: auth,
                "realm": "calbridge",
                # Radicale sleeps this long (randomised) before a 401 or 403, against guessing.
                "delay": str(settings.auth_failure_delay_seconds),
            },
            "rights": {"type": lambda configuration: rights},
            "storage": {"type": functools.partial(SqlStorage, store, settings)},
            "web": {"type": "none"},
            "hook": {"type": "none"},
            "logging": {"level": "error", "mask_passwords": "True", "bad_put_request_content": "False"},
        },
        "calbridge",
        privileged=True,
    )
    auth = SqlAuth(store, settings, configuration)
    rights = SqlRights(store, configuration)
    # Radicale's info and warning lines name users, paths and client addresses: keep them out.
    logging.getLogger("radicale").setLevel(logging.ERROR)
    return RadicaleParts(_Radicale(configuration), auth, rights)
