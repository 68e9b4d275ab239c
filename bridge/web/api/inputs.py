"""Reading JSON requests: size-limited bodies, RFC 3339 times, ISO 8601 durations, windows.

Every refusal is a Problem that says which field is wrong and why; nothing is written
before a request has passed these checks.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.requests import Request

from bridge.web.api.problems import Problem, invalid

_DURATION = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$")


async def json_body(request: Request, limit: int) -> dict[str, Any]:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise Problem(413, "too-large", "Request body too large", f"at most {limit} bytes")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise Problem(413, "too-large", "Request body too large", f"at most {limit} bytes")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Problem(400, "malformed-json", "Malformed JSON", str(exc)) from exc
    if not isinstance(data, dict):
        raise Problem(400, "malformed-json", "Malformed JSON", "the body must be a JSON object")
    return data


def field(data: dict[str, Any], name: str, kind: type | tuple[type, ...], *, required: bool = True,
          default: Any = None) -> Any:
    if name not in data or data[name] is None:
        if required:
            raise invalid(f"'{name}' is required", field=name)
        return default
    value = data[name]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise invalid(f"'{name}' has the wrong type", field=name)
    return value


def instant(data: dict[str, Any], name: str) -> datetime:
    """An RFC 3339 date-time with a UTC offset, as aware UTC."""
    text = field(data, name, str)
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as exc:
        raise invalid(f"'{name}' is not an RFC 3339 date-time", field=name) from exc
    if value.tzinfo is None:
        raise invalid(f"'{name}' needs a UTC offset (e.g. Z or +01:00)", field=name)
    return value.astimezone(UTC)


def window(data: dict[str, Any], max_days: int, prefix: str = "") -> tuple[datetime, datetime]:
    start, end = instant(data, "start"), instant(data, "end")
    where = f"{prefix}: " if prefix else ""
    if end <= start:
        raise invalid(f"{where}'end' must be after 'start'", field="end")
    if end - start > timedelta(days=max_days):
        raise invalid(f"{where}the window is longer than the maximum of {max_days} days", field="end")
    return start, end


def duration(data: dict[str, Any], name: str, default: timedelta | None = None) -> timedelta:
    """An ISO 8601 duration (PT30M, P1DT2H) or a number of minutes."""
    if name not in data and default is not None:
        return default
    value = field(data, name, (str, int))
    if isinstance(value, int):
        result = timedelta(minutes=value)
    else:
        match = _DURATION.match(value)
        if not match or value in ("P", "PT"):
            raise invalid(f"'{name}' is not an ISO 8601 duration like PT30M", field=name)
        days, hours, minutes, seconds = (int(part or 0) for part in match.groups())
        result = timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    if result < timedelta(minutes=1) or result > timedelta(days=31):
        raise invalid(f"'{name}' must be between one minute and 31 days", field=name)
    return result


def calendar_ids(data: dict[str, Any], limit: int = 200) -> list[int]:
    ids = field(data, "calendars", list)
    if not ids or len(ids) > limit or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
        raise invalid(f"'calendars' must list 1 to {limit} calendar ids", field="calendars")
    return list(dict.fromkeys(ids))


def query_flag(request: Request, name: str) -> bool:
    """A true/false query parameter (false when absent); 422 for anything else."""
    text = request.query_params.get(name, "false").strip().lower()
    if text not in ("true", "false"):
        raise invalid(f"'{name}' must be true or false", field=name)
    return text == "true"
