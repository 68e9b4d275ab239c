"""Build the Radicale WSGI application wired to calbridge's storage, auth and rights plugins.

The auth and rights plugins are built here, once, and handed to Radicale as ready objects, so
that the /dav gate decides who may write exactly as Radicale does (same credential cache).
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

import radicale
from radicale import config as radicale_config

from bridge.settings import Settings
from bridge.storage_plugin.auth import SqlAuth
from bridge.storage_plugin.rights import SqlRights
from bridge.storage_plugin.storage import SqlStorage
from bridge.store.db import Store


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
    return RadicaleParts(radicale.Application(configuration), auth, rights)
