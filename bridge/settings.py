"""Typed settings: the TOML file first, then ``BRIDGE_*`` environment variables.

This is the only module that reads the environment; everything else receives
one :class:`Settings` object.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

ENV_PREFIX = "BRIDGE_"


class SettingsError(ValueError):
    """A setting is missing, unknown or has a value of the wrong kind."""


@dataclass(frozen=True)
class Settings:
    """Every knob of the bridge; the defaults run it embedded on SQLite."""

    data_dir: Path = Path("./data")
    database_url: str = ""  # empty: SQLite file in data_dir
    host: str = "127.0.0.1"
    port: int = 5232
    base_url: str = ""  # public URL printed in CalDAV links; empty: http://host:port
    max_body_bytes: int = 1024 * 1024
    default_timezone: str = "Europe/Berlin"
    auth_cache_seconds: int = 60
    auth_failure_delay_seconds: float = 1.0
    sync_token_max_age_days: int = 30
    mkcalendar_limit: int = 50  # calendars one user may own that CalDAV clients made (MKCALENDAR); 0: none
    log_level: str = "info"
    db_pool_size: int = 8
    max_query_window_days: int = 366  # longest free/busy or free-slot window of /api/v1
    # Connections the server's own sync worker runs at once; 0: no worker in the server
    # (run ``calbridge worker`` processes instead, e.g. several of them on PostgreSQL).
    sync_workers: int = 2
    sync_log_days: int = 90  # sync log rows older than this are removed
    provider_concurrency: int = 4  # runs of one provider at once per worker process (rate limits)
    provider_ca_file: str = ""  # extra CA bundle (PEM) trusted for providers, beside the public ones
    # Whether the admin page and /api/v1 may connect accounts at loopback, private or link-local addresses (a
    # CalDAV server in the practice's own network); off, a tenant cannot make the server reach into its network.
    provider_private_networks: bool = False
    google_client_id: str = ""  # the OAuth client of Google connections (Google Cloud console)
    google_client_secret: str = field(default="", repr=False)
    microsoft_client_id: str = ""  # the app registration of Microsoft connections (Entra ID)
    microsoft_client_secret: str = field(default="", repr=False)
    microsoft_tenant: str = "common"  # common, organizations, consumers or a tenant id
    # Provider endpoints; empty: the public ones (override for a sovereign cloud or a test stand-in).
    google_auth_url: str = ""
    google_token_url: str = ""
    google_api_url: str = ""
    microsoft_login_url: str = ""
    microsoft_graph_url: str = ""
    # Outgoing mail (bridge.notify); empty smtp_host or mail_from: no mail is queued or sent.
    smtp_host: str = ""
    smtp_port: int = 0  # 0: the port of smtp_security (25 plain, 587 starttls, 465 tls)
    smtp_security: str = "starttls"  # plain | starttls | tls
    smtp_username: str = ""  # empty: no authentication
    smtp_password: str = field(default="", repr=False)
    mail_from: str = ""  # the From address of every mail, e.g. "Calendar <calendar@example.org>"
    # Fernet keys, comma-separated, newest first; empty: <data_dir>/secret.key (see bridge.secrets)
    secret_keys: str = field(default="", repr=False)
    # Bearer token a Prometheus scraper sends to /metrics; empty: /metrics answers 404.
    metrics_token: str = field(default="", repr=False)

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'calbridge.sqlite3').resolve()}"

    @property
    def mail_enabled(self) -> bool:
        return bool(self.smtp_host and self.mail_from)

    @property
    def effective_smtp_port(self) -> int:
        return self.smtp_port or {"plain": 25, "starttls": 587, "tls": 465}[self.smtp_security]

    @property
    def public_base_url(self) -> str:
        if self.base_url:
            return self.base_url.rstrip("/")
        return f"http://{self.host}:{self.port}"

    def validate(self) -> Settings:
        if self.max_body_bytes < 1024:
            raise SettingsError("max_body_bytes must be at least 1024")
        if not 0 < self.port < 65536:
            raise SettingsError(f"port must be between 1 and 65535, not {self.port}")
        if self.auth_cache_seconds < 0 or self.sync_token_max_age_days < 1:
            raise SettingsError("auth_cache_seconds must be >= 0 and sync_token_max_age_days >= 1")
        if self.mkcalendar_limit < 0:
            raise SettingsError("mkcalendar_limit must be 0 or more")
        if self.sync_log_days < 1:
            raise SettingsError("sync_log_days must be at least 1")
        if not 1 <= self.provider_concurrency <= 64:
            raise SettingsError("provider_concurrency must be between 1 and 64")
        if not 0 <= self.sync_workers <= 64:
            raise SettingsError("sync_workers must be between 0 and 64")
        if not 1 <= self.max_query_window_days <= 3660:
            raise SettingsError("max_query_window_days must be between 1 and 3660")
        if not 0 <= self.auth_failure_delay_seconds <= 10:
            raise SettingsError("auth_failure_delay_seconds must be between 0 and 10")
        try:
            zoneinfo.ZoneInfo(self.default_timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise SettingsError(f"default_timezone {self.default_timezone!r} is not an IANA zone") from exc
        if self.smtp_security not in {"plain", "starttls", "tls"}:
            raise SettingsError("smtp_security must be plain, starttls or tls")
        if not 0 <= self.smtp_port < 65536:
            raise SettingsError(f"smtp_port must be between 0 and 65535, not {self.smtp_port}")
        if self.log_level.lower() not in {"debug", "info", "warning", "error"}:
            raise SettingsError("log_level must be debug, info, warning or error")
        return self


_FIELD_TYPES = {f.name: f.type for f in fields(Settings)}


def _coerce(name: str, value: Any) -> Any:
    kind = _FIELD_TYPES[name]
    try:
        if kind == "int":
            if isinstance(value, bool):
                raise ValueError
            return int(value)
        if kind == "float":
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if kind == "Path":
            return Path(str(value))
        if kind == "bool":
            if isinstance(value, bool):
                return value
            if str(value).strip().lower() in ("true", "1", "yes", "on", "false", "0", "no", "off"):
                return str(value).strip().lower() in ("true", "1", "yes", "on")
            raise ValueError
        if isinstance(value, str | int | float):
            return str(value)
    except ValueError:
        pass
    raise SettingsError(f"setting {name!r} has an invalid value {value!r} (expected {kind})")


def load_settings(path: Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read ``path`` (if given or found at ``$BRIDGE_CONFIG``), then apply ``BRIDGE_*`` variables."""
    env = os.environ if environ is None else environ
    if path is None and env.get(ENV_PREFIX + "CONFIG"):
        path = Path(env[ENV_PREFIX + "CONFIG"])
    values: dict[str, Any] = {}
    if path is not None:
        try:
            with path.open("rb") as handle:
                raw = tomllib.load(handle)
        except FileNotFoundError as exc:
            raise SettingsError(f"config file {path} does not exist") from exc
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"config file {path} is not valid TOML: {exc}") from exc
        section = raw.get("bridge", raw)
        for key, value in section.items():
            if key not in _FIELD_TYPES:
                raise SettingsError(f"unknown setting {key!r} in {path}")
            values[key] = _coerce(key, value)
    for key, value in env.items():
        if not key.startswith(ENV_PREFIX) or key == ENV_PREFIX + "CONFIG":
            continue
        name = key[len(ENV_PREFIX):].lower()
        if name not in _FIELD_TYPES:
            raise SettingsError(f"unknown environment variable {key}")
        values[name] = _coerce(name, value)
    return Settings(**values).validate()


def replace(settings: Settings, **changes: Any) -> Settings:
    """A copy with ``changes`` applied and validated (used by the CLI's flags and tests)."""
    return dataclasses.replace(settings, **changes).validate()
