"""SOAP plumbing for the EWS stand-in: safe parsing, element builders, response messages and faults, shaped
as Exchange Server 2016 writes them (namespaces m/t/e, ``ServerVersionInfo`` in the SOAP header, errors as
``ResponseClass="Error"`` messages, throttling as an HTTP 500 SOAP fault with ``BackOffMilliseconds``)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Any

from lxml import etree

SOAP = "http://schemas.xmlsoap.org/soap/envelope/"
M = "http://schemas.microsoft.com/exchange/services/2006/messages"
T = "http://schemas.microsoft.com/exchange/services/2006/types"
E = "http://schemas.microsoft.com/exchange/services/2006/errors"
NSMAP = {"s": SOAP, "m": M, "t": T}

# What an Exchange Server 2016 CU answers; its Version string is one exchangelib knows to replace by the one it asked.
SERVER_VERSION = {
    "MajorVersion": "15",
    "MinorVersion": "1",
    "MajorBuildNumber": "2507",
    "MinorBuildNumber": "6",
    "Version": "V2017_07_11",
}

# Documented MessageText of the response codes the stand-in gives.
MESSAGES = {
    "ErrorServerBusy": "The server cannot service this request right now. Try again later.",
    "ErrorInvalidSyncStateData": "Synchronization state data is corrupt or otherwise invalid.",
    "ErrorItemNotFound": "The specified object was not found in the store., The process failed to get the correct "
    "properties.",
    "ErrorFolderNotFound": "The specified folder could not be found in the store.",
    "ErrorIrresolvableConflict": "The send or update operation could not be performed because the change key passed "
    "in the request does not match the current change key for the item.",
    "ErrorAccessDenied": "Access is denied. Check credentials and try again.",
    "ErrorInvalidIdMalformed": "Id is malformed.",
    "ErrorCalendarOccurrenceIndexIsOutOfRecurrenceRange": "Occurrence index is out of recurrence range.",
    "ErrorCalendarOccurrenceIsDeletedFromRecurrence": "Occurrence with this index was previously deleted from the "
    "recurrence.",
    "ErrorInvalidOperation": "The operation is not valid.",
    "ErrorCalendarEndDateIsEarlierThanStartDate": "EndDate is earlier than StartDate",
    "ErrorChangeKeyRequiredForWriteOperations": "Update and delete operations require a change key.",
    "ErrorRecurrenceHasNoOccurrence": "The recurrence pattern has no occurrence.",
    "ErrorSendMeetingInvitationsRequired": "SendMeetingInvitations attribute is required for calendar items.",
    "ErrorSendMeetingCancellationsRequired": "SendMeetingCancellations attribute is required for calendar items.",
    "ErrorSendMeetingInvitationsOrCancellationsRequired": "SendMeetingInvitationsOrCancellations attribute is "
    "required for calendar items.",
    "ErrorInvalidRequest": "The request is invalid.",
}

_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


class Fault(Exception):
    """A request the stand-in refuses as a whole: an HTTP 500 SOAP fault, as Exchange sends for throttling."""

    def __init__(self, code: str, message: str = "", back_off_ms: int | None = None) -> None:
        super().__init__(code)
        self.code, self.message, self.back_off_ms = code, message or MESSAGES.get(code, code), back_off_ms


class ResponseError(Exception):
    """One element of a request failed: its response message gets ``ResponseClass="Error"`` and this code."""

    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(code)
        self.code, self.message = code, message or MESSAGES.get(code, code)


def parse(body: bytes) -> etree._Element:
    """The request envelope; a DTD (entity expansion, external fetches) is refused, not processed."""
    if b"<!DOCTYPE" in body[:2048].upper():
        raise Fault("ErrorInvalidRequest", "DTDs are not accepted")
    try:
        return etree.fromstring(body, _PARSER)
    except etree.XMLSyntaxError:
        raise Fault("ErrorInvalidRequest", "the request is not well-formed XML") from None


def t(name: str, text: str | None = None, **attrs: str) -> etree._Element:
    """A ``t:`` (types) element."""
    elem = etree.Element(f"{{{T}}}{name}", nsmap={"t": T})
    for key, value in attrs.items():
        elem.set(key, value)
    if text is not None:
        elem.text = text
    return elem


def m(name: str, text: str | None = None, **attrs: str) -> etree._Element:
    """An ``m:`` (messages) element."""
    elem = etree.Element(f"{{{M}}}{name}", nsmap={"m": M, "t": T})
    for key, value in attrs.items():
        elem.set(key, value)
    if text is not None:
        elem.text = text
    return elem


def child(parent: etree._Element, elem: etree._Element) -> etree._Element:
    parent.append(elem)
    return elem


def local(elem: Any) -> str:
    return etree.QName(elem).localname if isinstance(elem.tag, str) else ""


def kids(elem: etree._Element | None) -> list[etree._Element]:
    """The element children of ``elem`` (none when it is absent); comments and text are skipped."""
    return [] if elem is None else [item for item in elem if isinstance(item.tag, str)]


def find_t(elem: etree._Element, name: str) -> etree._Element | None:
    return elem.find(f"{{{T}}}{name}")


def find_m(elem: etree._Element, name: str) -> etree._Element | None:
    return elem.find(f"{{{M}}}{name}")


def text_of(elem: etree._Element | None) -> str | None:
    return None if elem is None else (elem.text or "")


def ews_time(moment: datetime) -> str:
    """xs:dateTime as Exchange writes it: UTC with a Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(value: str) -> datetime:
    """An xs:dateTime (Z, offset, or none: read as UTC) or an xs:date (midnight UTC) as an aware UTC datetime."""
    text = value.strip()
    if len(text) in (10, 11, 16) and "T" not in text:  # 2026-01-05, 2026-01-05Z, 2026-01-05+01:00
        return datetime.combine(date.fromisoformat(text[:10]), time(0), UTC)
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    moment = datetime.fromisoformat(text)
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)


def envelope(content: etree._Element | None, *, header: bool = True) -> bytes:
    """A response envelope with the ``ServerVersionInfo`` header that exchangelib reads the version from."""
    root = etree.Element(f"{{{SOAP}}}Envelope", nsmap={"s": SOAP})
    if header:
        head = etree.SubElement(root, f"{{{SOAP}}}Header")
        info = etree.SubElement(head, f"{{{T}}}ServerVersionInfo", nsmap={"h": T})
        for key, value in SERVER_VERSION.items():
            info.set(key, value)
    body = etree.SubElement(root, f"{{{SOAP}}}Body")
    if content is not None:
        body.append(content)
    return etree.tostring(root, xml_declaration=True, encoding="utf-8")


def fault(error: Fault) -> bytes:
    """The SOAP fault Exchange sends for a request refused as a whole (``ErrorServerBusy`` with its back-off)."""
    root = etree.Element(f"{{{SOAP}}}Fault", nsmap={"s": SOAP})
    code = etree.SubElement(root, "faultcode", nsmap={"a": T})
    code.text = f"a:{error.code}"
    string = etree.SubElement(root, "faultstring")
    string.set("{http://www.w3.org/XML/1998/namespace}lang", "en-US")
    string.text = error.message
    detail = etree.SubElement(root, "detail")
    etree.SubElement(detail, f"{{{E}}}ResponseCode", nsmap={"e": E}).text = error.code
    etree.SubElement(detail, f"{{{E}}}Message", nsmap={"e": E}).text = error.message
    if error.back_off_ms is not None:
        xml = etree.SubElement(detail, f"{{{T}}}MessageXml", nsmap={"t": T})
        etree.SubElement(xml, f"{{{T}}}Value", Name="BackOffMilliseconds").text = str(error.back_off_ms)
    return envelope(root, header=False)


def success(operation: str) -> etree._Element:
    message = m(f"{operation}ResponseMessage", ResponseClass="Success")
    child(message, m("ResponseCode", "NoError"))
    return message


def failure(operation: str, error: ResponseError) -> etree._Element:
    message = m(f"{operation}ResponseMessage", ResponseClass="Error")
    child(message, m("MessageText", error.message))
    child(message, m("ResponseCode", error.code))
    child(message, m("DescriptiveLinkKey", "0"))
    return message


def response(operation: str, messages: list[etree._Element]) -> etree._Element:
    """``<m:{operation}Response><m:ResponseMessages>`` around the per-element messages."""
    outer = m(f"{operation}Response")
    container = child(outer, m("ResponseMessages"))
    for message in messages:
        container.append(message)
    return outer
