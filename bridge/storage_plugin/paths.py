"""CalDAV paths of calbridge: "" (root), "<login>" (principal), "<login>/<slug>" (calendar),
"<login>/<slug>/<href>" (item)."""

from __future__ import annotations

from radicale import pathutils


def split(path: str) -> list[str]:
    """The segments of a Radicale path (sanitized again: it may come from a request header)."""
    stripped = pathutils.sanitize_path(path).strip("/")
    return stripped.split("/") if stripped else []
