"""The customer's address in an event a provider wrote by hand: the first valid e-mail address in
SUMMARY, then DESCRIPTION, that is neither the provider's own nor the tenant's. Pure: no I/O.

It is read before the privacy rules strip those fields. What counts:

- an address written out (``Termin kunde@example.com``), in angle brackets, or as a ``mailto:`` link;
- not an address inside a URL (``https://meet.example/j/1?u=a@b.example``, ``http://user@host/``): a
  URL is a link to something, not the customer;
- not a malformed one (``a@@b.de``, ``a@b``, ``a..b@c.de``, ``a@-b.de``, ``a@b@c.de``, or one with
  letters outside ASCII, ``müller@b.de``, whose ASCII tail would be somebody else): skipped, the
  search goes on;
- the first one that is left, in reading order; the provider's own and the tenant's addresses (and
  other excluded ones, compared without regard to case) are skipped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MAX_ADDRESS = 254
MAX_LOCAL = 64

# A URL with an authority (scheme://...) or a bare www. host, up to the next white space or quote.
_URL = re.compile(r"""(?i)\b[a-z][a-z0-9+.-]*://[^\s"'<>]*|\bwww\.[^\s"'<>]*""")
# A candidate: the widest run of address characters around one @, checked afterwards.
_CANDIDATE = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]*@[A-Za-z0-9.@-]*")
_LOCAL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
_TLD = re.compile(r"[A-Za-z]{2,63}|xn--[A-Za-z0-9-]{1,59}")


def customer_address(summary: str | None, description: str | None, *, exclude: Iterable[str] = ()) -> str | None:
    """The customer's address (domain in lower case), or None when the event names no usable one."""
    skipped = {address.strip().lower() for address in exclude if address}
    for text in (summary, description):
        for address in addresses(text or ""):
            if address.lower() not in skipped:
                return address
    return None


def addresses(text: str) -> list[str]:
    """Every valid address in ``text``, in reading order, URLs left out."""
    found = []
    text = _URL.sub(" ", text)
    for match in _CANDIDATE.finditer(text):
        before, after = text[match.start() - 1:match.start()], text[match.end():match.end() + 1]
        if before.isalnum() or after.isalnum():  # glued to non-ASCII letters (müller@...): not what it seems
            continue
        address = valid_address(match.group().rstrip(".-"))
        if address is not None:
            found.append(address)
    return found


def valid_address(candidate: str) -> str | None:
    """``candidate`` with its domain in lower case if it is a plain ``local@domain.tld``; None otherwise."""
    if len(candidate) > MAX_ADDRESS or candidate.count("@") != 1:
        return None
    local, _, domain = candidate.partition("@")
    if len(local) > MAX_LOCAL or not _LOCAL.fullmatch(local):
        return None
    labels = domain.split(".")
    if len(labels) < 2 or not all(_LABEL.fullmatch(label) for label in labels) or not _TLD.fullmatch(labels[-1]):
        return None
    return f"{local}@{domain.lower()}"
