"""Check /api/v1 answers against the OpenAPI document the server serves."""

from __future__ import annotations

import httpx
import jsonschema

from bridge.web.api.openapi import document

_DOCUMENT = document()


def check(response: httpx.Response, path: str, method: str) -> None:
    """The status is documented for this operation and the body matches its schema."""
    operation = _DOCUMENT["paths"][path][method]
    documented = operation["responses"].get(str(response.status_code))
    assert documented is not None, f"{method.upper()} {path} answered undocumented {response.status_code}"
    content = documented.get("content")
    if not content:
        assert not response.content
        return
    media_type = response.headers["content-type"].split(";")[0]
    assert media_type in content, f"{media_type} not documented for {response.status_code}"
    schema = {**content[media_type]["schema"], "components": _DOCUMENT["components"]}
    jsonschema.Draft202012Validator(schema).validate(response.json())
