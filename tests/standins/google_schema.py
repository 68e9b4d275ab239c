"""The Google Calendar v3 discovery document (as google-api-python-client ships it) and JSON Schema made
from its schemas, so the stand-in checks every body it is sent and every body it answers with.

Discovery schemas are nearly JSON Schema: ``$ref`` names another schema, ``type: any`` is anything, and
64-bit integers travel as strings. The conversion closes every object (``additionalProperties: false``
unless the document gives a map's value type), so a misspelt field fails a test instead of passing
silently; date and date-time strings get RFC 3339 patterns.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import googleapiclient
import jsonschema

DOCUMENT = Path(googleapiclient.__file__).parent / "discovery_cache" / "documents" / "calendar.v3.json"

_DATE = r"^\d{4}-\d{2}-\d{2}$"
_DATE_TIME = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})?$"


class SchemaViolation(Exception):
    """A body that does not follow the discovery document (the message says where and why)."""


@functools.cache
def discovery() -> dict[str, Any]:
    """The discovery document, parsed (do not modify: copy it first)."""
    return dict(json.loads(DOCUMENT.read_text(encoding="utf-8")))


def convert(schema: dict[str, Any]) -> dict[str, Any]:
    """One discovery schema as JSON Schema (draft 7), references pointing into ``definitions``."""
    if "$ref" in schema:
        return {"$ref": f"#/definitions/{schema['$ref']}"}
    kind = schema.get("type")
    out: dict[str, Any] = {}
    if kind == "any" or kind is None:
        return out
    if kind == "object":
        out["type"] = "object"
        out["properties"] = {name: convert(sub) for name, sub in (schema.get("properties") or {}).items()}
        extra = schema.get("additionalProperties")
        out["additionalProperties"] = convert(extra) if isinstance(extra, dict) else False
    elif kind == "array":
        out["type"] = "array"
        out["items"] = convert(schema.get("items") or {})
    elif kind == "string":
        out["type"] = "string"
        if schema.get("format") == "date":
            out["pattern"] = _DATE
        elif schema.get("format") == "date-time":
            out["pattern"] = _DATE_TIME
        elif schema.get("format") in ("int64", "uint64"):
            out["pattern"] = r"^-?\d+$"
    elif kind in ("integer", "number", "boolean"):
        out["type"] = kind
    else:
        raise ValueError(f"unknown discovery type {kind!r}")
    if "enum" in schema:
        out["enum"] = list(schema["enum"])
    return out


@functools.cache
def json_schema() -> dict[str, Any]:
    """Every schema of the document, as ``definitions`` of one JSON Schema."""
    return {"$schema": "http://json-schema.org/draft-07/schema#",
            "definitions": {name: convert(schema) for name, schema in discovery()["schemas"].items()}}


@functools.cache
def _validator(name: str) -> jsonschema.Draft7Validator:
    if name not in discovery()["schemas"]:
        raise KeyError(name)
    return jsonschema.Draft7Validator({**json_schema(), "$ref": f"#/definitions/{name}"})


def validate(name: str, body: Any) -> None:
    """Raise :class:`SchemaViolation` unless ``body`` is a valid ``name`` (Event, Events, Channel, ...)."""
    errors = sorted(_validator(name).iter_errors(body), key=lambda e: list(e.absolute_path))
    if errors:
        first = errors[0]
        where = "/".join(str(part) for part in first.absolute_path) or "(root)"
        raise SchemaViolation(f"{name} at {where}: {first.message}")


def method(method_id: str) -> dict[str, Any]:
    """One method of the document by its id (``calendar.events.list``)."""
    def walk(resources: dict[str, Any]) -> dict[str, Any] | None:
        for resource in resources.values():
            for found in (resource.get("methods") or {}).values():
                if found.get("id") == method_id:
                    return dict(found)
            if (inner := walk(resource.get("resources") or {})) is not None:
                return inner
        return None

    found = walk(discovery()["resources"])
    if found is None:
        raise KeyError(method_id)
    return found


def request_schema(method_id: str) -> str | None:
    return method(method_id).get("request", {}).get("$ref")


def response_schema(method_id: str) -> str | None:
    return method(method_id).get("response", {}).get("$ref")


def served_document(root_url: str) -> dict[str, Any]:
    """The document as a stand-in at ``root_url`` (``https://127.0.0.1:port/``) serves it, so that a
    client built from it sends its requests there."""
    document = json.loads(json.dumps(discovery()))
    document["rootUrl"] = root_url
    document["baseUrl"] = root_url + document["servicePath"]
    document["mtlsRootUrl"] = root_url
    return dict(document)
