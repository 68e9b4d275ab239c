"""An answer the /dav gate sends itself instead of passing the request to Radicale."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Answer:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes = b""


def xml_answer(status: int, body: bytes) -> Answer:
    return Answer(status, [(b"Content-Type", b"text/xml; charset=utf-8")], body)
