"""The OpenAPI 3.1 document of /api/v1, served at /api/v1/openapi.json.

Written by hand next to the routes; a test checks that it is valid, that it names every
route of the app and nothing else, and that real answers match its schemas.
"""

from __future__ import annotations

from typing import Any

from bridge.sync.connection_admin import PROVIDERS

TIME = {"type": "string", "format": "date-time", "description": "RFC 3339 with a UTC offset"}
_BCC = {"type": "boolean", "description": "booking confirmations go to the calendar owner as a blind copy too"}
DURATION = {"oneOf": [{"type": "string", "pattern": "^P", "description": "ISO 8601 duration, e.g. PT30M"},
                      {"type": "integer", "minimum": 1, "description": "minutes"}]}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _problems(*statuses: int) -> dict[str, Any]:
    titles = {400: "Malformed JSON", 401: "No valid bearer token", 403: "Token lacks the admin scope",
              404: "Not found (or another tenant's)", 409: "Conflict", 410: "Cursor expired: start over",
              413: "Body too large", 422: "Invalid request"}
    return {str(status): {"description": titles[status],
                          "content": {"application/problem+json": {"schema": _ref("Problem")}}}
            for status in (401, *statuses)}


_CONFIRM = {"name": "confirm", "in": "query", "required": False, "schema": {"type": "boolean", "default": False},
            "description": "go ahead although bookings would be cancelled or connections removed"}
_REMOVAL = ("With confirmed bookings or connections and without confirm=true, nothing is removed: a 409 problem "
            "'confirmation-needed' names the counts in 'consequences'. With it, each booking is cancelled first "
            "(GET /changes and webhooks report each one, as a deleted item with the booking's status 'cancelled'), "
            "each connection is removed with its credentials, then the calendar.")


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


SCHEMAS: dict[str, Any] = {
    "Problem": {"type": "object", "required": ["type", "title", "status"], "properties": {
        "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
        "detail": {"type": "string"}, "instance": {"type": "string"}, "field": {"type": "string"},
        "consequences": {"type": "object", "description": "what a removal would end (confirmation-needed)",
                         "required": ["calendars", "bookings", "connections"], "properties": {
                             "calendars": {"type": "integer"}, "bookings": {"type": "integer"},
                             "connections": {"type": "integer"}}},
        "conflicts": {"type": "array", "items": _ref("BusyPeriod")},
        "calendars": {"type": "array", "description": "the account's calendars, to choose 'remote_calendar'",
                      "items": {"type": "object", "required": ["id", "name"], "properties": {
                          "id": {"type": "string"}, "name": {"type": "string"}, "read_only": {"type": "boolean"}}}}}},
    "Period": {"type": "object", "required": ["start", "end"], "properties": {"start": TIME, "end": TIME}},
    "BusyPeriod": {"type": "object", "required": ["start", "end", "type"], "properties": {
        "start": TIME, "end": TIME, "type": {"enum": ["BUSY", "BUSY-TENTATIVE", "BUSY-UNAVAILABLE"]},
        "source": {"type": "object", "required": ["kind", "item"], "properties": {
            "kind": {"enum": ["booking", "client", "connection"]}, "item": {"type": "integer"},
            "connection": {"type": "integer"}, "provider": {"type": ["string", "null"]}}}}},
    "FreeBusyRequest": {"type": "object", "required": ["calendars", "start", "end"], "properties": {
        "calendars": {"type": "array", "items": {"type": "integer"}, "minItems": 1, "maxItems": 200},
        "start": TIME, "end": TIME}},
    "FreeBusy": {"type": "object", "required": ["start", "end", "calendars", "merged"], "properties": {
        "start": TIME, "end": TIME,
        "calendars": {"type": "array", "items": {"type": "object", "required": ["id", "busy"], "properties": {
            "id": {"type": "integer"}, "busy": {"type": "array", "items": _ref("BusyPeriod")}}}},
        "merged": {"type": "array", "items": _ref("Period")}}},
    "FreeSlotsRequest": {"type": "object", "required": ["calendars", "windows", "duration"], "properties": {
        "calendars": {"type": "array", "items": {"type": "integer"}, "minItems": 1},
        "windows": {"type": "array", "items": _ref("Period"), "minItems": 1, "maxItems": 100},
        "duration": DURATION, "step": DURATION}},
    "FreeSlots": {"type": "object", "required": ["duration_minutes", "slots"], "properties": {
        "duration_minutes": {"type": "integer"}, "slots": {"type": "array", "items": _ref("Period")}}},
    "Customer": {"type": "object", "required": ["name", "email"], "properties": {
        "name": {"type": "string", "maxLength": 200}, "email": {"type": "string", "format": "email"},
        "language": {"enum": ["de", "en"]}}},
    "BookingRequest": {"type": "object", "required": ["calendar", "start", "end", "customer"], "properties": {
        "calendar": {"type": "integer"}, "start": TIME, "end": TIME, "customer": _ref("Customer"),
        "notes": {"type": "string", "maxLength": 4000}}},
    "Booking": {"type": "object", "required": ["id", "calendar", "status", "start", "end", "customer"],
                "properties": {
                    "id": {"type": "string", "format": "uuid"}, "calendar": {"type": "integer"},
                    "status": {"enum": ["confirmed", "cancelled"]}, "start": TIME, "end": TIME,
                    "customer": _ref("Customer"), "notes": {"type": "string"}, "sequence": {"type": "integer"},
                    "event": {"type": ["string", "null"], "description": "CalDAV path of the booking's event"},
                    "created_at": TIME, "modified_at": TIME}},
    "Calendar": {"type": "object", "required": ["id", "owner", "slug", "timezone", "path"], "properties": {
        "id": {"type": "integer"}, "owner": {"type": "string"}, "slug": {"type": "string"},
        "timezone": {"type": "string"}, "name": {"type": "string"}, "path": {"type": "string"},
        "url": {"type": "string"}, "bcc_provider": _BCC}},
    "CalendarRequest": {"type": "object", "required": ["owner", "slug"], "properties": {
        "owner": {"type": "string"}, "slug": {"type": "string"}, "timezone": {"type": "string"},
        "name": {"type": "string"}, "bcc_provider": _BCC}},
    "CalendarPatch": {"type": "object", "required": ["bcc_provider"], "additionalProperties": False,
                      "properties": {"bcc_provider": _BCC}},
    "User": {"type": "object", "required": ["login", "email", "role", "language"], "properties": {
        "login": {"type": "string"}, "email": {"type": "string"},
        "role": {"enum": ["admin", "member", "service"]}, "language": {"enum": ["de", "en"]}}},
    "ConnectionOptions": {
        "type": "object", "additionalProperties": False,
        "description": "rule options; in requests every key is optional (the others keep their value)",
        "properties": {
            "transparent_as_busy": {"type": "boolean"}, "allday_as_busy": {"type": "boolean"},
            "anonymize_location": {"type": "boolean"}, "no_personal_data": {"type": "boolean"},
            "private_without_details": {"type": "boolean"},
            "notify_customers": {"type": "boolean", "description": "mail customers named in events the provider "
                                 "writes, moves or deletes (never on a baseline)"},
            "sync_timezone": {"type": ["string", "null"], "description": "IANA zone floating times are read in"}}},
    "Run": {"type": "object", "required": ["id", "connection", "trigger", "status", "baseline", "started_at",
                                           "finished_at", "requests", "counts", "error_class", "error_message"],
            "properties": {
                "id": {"type": "integer"}, "connection": {"type": "integer"},
                "trigger": {"enum": ["schedule", "manual", "reset", "push", "options"]},
                "status": {"enum": ["running", "ok", "partial", "held", "failed"]},
                "baseline": {"type": "boolean", "description": "a full fetch that mails no one"},
                "started_at": TIME, "finished_at": {"oneOf": [TIME, {"type": "null"}]},
                "requests": {"type": "integer", "description": "requests made to the provider"},
                "counts": {"type": "object", "description": "per side (in, out, bookings) and kind; item errors "
                                                            "and held deletions name our ids and error classes"},
                "error_class": {"type": ["string", "null"]},
                "error_message": {"type": ["string", "null"], "description": "plain words, no personal data"}}},
    "Connection": {
        "type": "object",
        "required": ["id", "calendar", "calendar_path", "provider", "url", "remote_calendar", "remote_name",
                     "has_credentials", "direction", "enabled", "options", "needs_attention", "failures",
                     "baseline_due", "syncing", "next_due_at", "created_at", "last_run"],
        "properties": {
            "id": {"type": "integer"}, "calendar": {"type": "integer"}, "calendar_path": {"type": "string"},
            "provider": {"type": "string"}, "url": {"type": "string"}, "remote_calendar": {"type": "string"},
            "remote_name": {"type": "string"},
            "has_credentials": {"type": "boolean", "description": "credentials are stored (never shown)"},
            "direction": {"enum": ["both", "inbound", "outbound"]}, "enabled": {"type": "boolean"},
            "options": _ref("ConnectionOptions"),
            "needs_attention": {"type": "boolean", "description": "the provider refused the credentials"},
            "failures": {"type": "integer"}, "baseline_due": {"type": "boolean"},
            "syncing": {"type": "boolean", "description": "a run holds the connection's lease"},
            "next_due_at": {"oneOf": [TIME, {"type": "null"}]}, "created_at": TIME,
            "last_run": {"oneOf": [_ref("Run"), {"type": "null"}]},
            "options_change": {"type": "object", "description": "PATCH with options only: what changed",
                               "required": ["tightened", "loosened", "rewritten", "removed", "baseline_due"],
                               "properties": {
                                   "tightened": {"type": "array", "items": {"type": "string"}},
                                   "loosened": {"type": "array", "items": {"type": "string"}},
                                   "rewritten": {"type": "integer"}, "removed": {"type": "integer"},
                                   "baseline_due": {"type": "boolean"}}}}},
    "ConnectionRequest": {
        "type": "object", "required": ["calendar", "provider"], "additionalProperties": False, "properties": {
            "calendar": {"type": "integer"}, "provider": {"enum": list(PROVIDERS)},
            "url": {"type": "string", "description": "server or account URL (CalDAV), feed URL (ics)"},
            "remote_calendar": {"type": "string", "description": "the remote calendar's id (CalDAV: its URL); "
                                                                 "may be left out when the account has one"},
            "username": {"type": "string"},
            "password": {"type": "string", "writeOnly": True, "description": "stored encrypted, never returned"},
            "direction": {"enum": ["both", "inbound", "outbound"]}, "options": _ref("ConnectionOptions")}},
    "ConnectionPatch": {"type": "object", "additionalProperties": False, "properties": {
        "options": _ref("ConnectionOptions"), "direction": {"enum": ["both", "inbound", "outbound"]},
        "enabled": {"type": "boolean", "description": "false pauses and keeps mirrored items; true also clears "
                                                      "needs_attention"}}},
    "SyncRequest": {"type": "object", "additionalProperties": False, "properties": {
        "reset": {"type": "boolean", "description": "forget the sync state: a full resync without mails"},
        "confirm_deletions": {"type": "boolean", "description": "apply deletions a previous run held back"}}},
    "Change": {"type": "object", "required": ["calendar", "number", "href", "deleted", "at", "booking"],
               "properties": {
                   "calendar": {"type": "integer"},
                   "number": {"type": "integer", "description": "the change's number in its calendar"},
                   "href": {"type": "string", "description": "CalDAV path of the item"},
                   "deleted": {"type": "boolean"}, "at": TIME,
                   "booking": {"oneOf": [{"type": "null"}, {
                       "type": "object", "required": ["id", "status"], "description": "the booking, as it is now",
                       "properties": {"id": {"type": "string", "format": "uuid"},
                                      "status": {"enum": ["confirmed", "cancelled"]}}}]}}},
    "UserRequest": {"type": "object", "required": ["login", "email", "password"], "properties": {
        "login": {"type": "string"}, "email": {"type": "string"}, "password": {"type": "string", "minLength": 8},
        "role": {"enum": ["admin", "member", "service"]}, "language": {"enum": ["de", "en"]}}},
}

_BOOKING_ID = [{"name": "booking_id", "in": "path", "required": True, "schema": {"type": "string"}}]
_CALENDAR_ID = [{"name": "calendar_id", "in": "path", "required": True, "schema": {"type": "integer"}}]
_CONNECTION_ID = [{"name": "connection_id", "in": "path", "required": True, "schema": {"type": "integer"}}]
_LOGIN = [{"name": "login", "in": "path", "required": True, "schema": {"type": "string"}}]

PATHS: dict[str, Any] = {
    "/freebusy": {"post": {
        "summary": "Busy periods of calendars over a window, per calendar and merged",
        "requestBody": _body(_ref("FreeBusyRequest")),
        "responses": {"200": _json(_ref("FreeBusy"), "Busy periods"), **_problems(400, 404, 413, 422)}}},
    "/free-slots": {"post": {
        "summary": "Starts of free slots of a duration inside windows, when every calendar is free",
        "requestBody": _body(_ref("FreeSlotsRequest")),
        "responses": {"200": _json(_ref("FreeSlots"), "Free slots"), **_problems(400, 404, 413, 422)}}},
    "/bookings": {"post": {
        "summary": "Book a slot (idempotent by the Idempotency-Key header)",
        "parameters": [{"name": "Idempotency-Key", "in": "header", "required": True, "schema": {"type": "string"}}],
        "requestBody": _body(_ref("BookingRequest")),
        "responses": {"201": _json(_ref("Booking"), "Booked"),
                      "200": _json(_ref("Booking"), "The booking an earlier request with this key made"),
                      **_problems(400, 404, 409, 413, 422)}}},
    "/bookings/{booking_id}": {
        "parameters": _BOOKING_ID,
        "get": {"summary": "Read a booking", "responses": {"200": _json(_ref("Booking"), "The booking"),
                                                            **_problems(404)}},
        "patch": {"summary": "Move a booking to another time", "requestBody": _body(_ref("Period")),
                  "responses": {"200": _json(_ref("Booking"), "Moved"), **_problems(400, 404, 409, 413, 422)}},
        "delete": {"summary": "Cancel a booking (its event is removed)",
                   "responses": {"200": _json(_ref("Booking"), "Cancelled"), **_problems(404)}}},
    "/calendars": {
        "get": {"summary": "The tenant's calendars",
                "responses": {"200": _json({"type": "object", "required": ["calendars"], "properties": {
                    "calendars": {"type": "array", "items": _ref("Calendar")}}}, "Calendars")}},
        "post": {"summary": "Create a calendar (admin scope)", "requestBody": _body(_ref("CalendarRequest")),
                 "responses": {"201": _json(_ref("Calendar"), "Created"), **_problems(400, 403, 404, 409, 422)}}},
    "/calendars/{calendar_id}": {
        "parameters": _CALENDAR_ID,
        "get": {"summary": "Read a calendar", "responses": {"200": _json(_ref("Calendar"), "The calendar"),
                                                             **_problems(404)}},
        "patch": {"summary": "Change the calendar's settings (admin scope)",
                  "requestBody": _body(_ref("CalendarPatch")),
                  "responses": {"200": _json(_ref("Calendar"), "Changed"), **_problems(400, 403, 404, 413, 422)}},
        "delete": {"summary": "Remove a calendar with its events (admin scope); bookings and connections only "
                              "when confirmed",
                   "description": _REMOVAL,
                   "parameters": [_CONFIRM],
                   "responses": {"204": {"description": "Removed"}, **_problems(403, 404, 409, 422)}}},
    "/connections": {
        "get": {"summary": "The tenant's connections with their last run",
                "responses": {"200": _json({"type": "object", "required": ["connections"], "properties": {
                    "connections": {"type": "array", "items": _ref("Connection")}}}, "Connections")}},
        "post": {"summary": "Connect a calendar to an external calendar (admin scope); the account is tested first",
                 "description": "Nothing is stored when the account cannot be used: a 422 problem says why. "
                                "A calendar already connected to the same remote calendar is a 409.",
                 "requestBody": _body(_ref("ConnectionRequest")),
                 "responses": {"201": _json(_ref("Connection"), "Connected"),
                               **_problems(400, 403, 404, 409, 413, 422)}}},
    "/connections/{connection_id}": {
        "parameters": _CONNECTION_ID,
        "get": {"summary": "Read a connection", "responses": {"200": _json(_ref("Connection"), "The connection"),
                                                               **_problems(404)}},
        "patch": {"summary": "Change options, direction or enabled (admin scope), all or nothing",
                  "description": "A tightened option is applied to the mirrored items at once; a loosened one "
                                 "makes the next run a baseline.",
                  "requestBody": _body(_ref("ConnectionPatch")),
                  "responses": {"200": _json(_ref("Connection"), "Changed"), **_problems(400, 403, 404, 413, 422)}},
        "delete": {"summary": "Disconnect (admin scope); mirrored items are kept as ordinary items unless removed",
                   "parameters": [{"name": "remove_mirrored", "in": "query", "required": False,
                                   "schema": {"type": "boolean", "default": False}}],
                   "responses": {"200": _json({"type": "object", "required": ["id", "mirrored_items",
                                                                              "mirrored_removed"], "properties": {
                       "id": {"type": "integer"}, "mirrored_items": {"type": "integer"},
                       "mirrored_removed": {"type": "boolean"}}}, "Disconnected"),
                       **_problems(403, 404, 409, 422)}}},
    "/connections/{connection_id}/sync": {
        "parameters": _CONNECTION_ID,
        "post": {"summary": "Sync now (admin scope) and return the run; 409 while another run is in progress",
                 "requestBody": {"required": False, "content": {"application/json": {"schema": _ref("SyncRequest")}}},
                 "responses": {"200": _json(_ref("Run"), "The run (its status says how it went)"),
                               **_problems(400, 403, 404, 409, 413, 422)}}},
    "/connections/{connection_id}/runs": {
        "parameters": _CONNECTION_ID,
        "get": {"summary": "The sync log, newest first",
                "parameters": [
                    {"name": "limit", "in": "query", "required": False,
                     "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}},
                    {"name": "before", "in": "query", "required": False, "description": "next_before of the "
                     "previous page", "schema": {"type": "integer", "minimum": 1}}],
                "responses": {"200": _json({"type": "object", "required": ["runs", "next_before"], "properties": {
                    "runs": {"type": "array", "items": _ref("Run")},
                    "next_before": {"type": ["integer", "null"], "description": "null on the last page"}}},
                    "Runs"), **_problems(404, 422)}}},
    "/changes": {"get": {
        "summary": "Item changes of the tenant's calendars since a cursor, in commit order per calendar",
        "parameters": [
            {"name": "since", "in": "query", "required": False, "schema": {"type": "string"},
             "description": "'next' of the previous page; without it the feed starts at the oldest change kept"},
            {"name": "limit", "in": "query", "required": False,
             "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}}],
        "responses": {"200": _json({"type": "object", "required": ["changes", "next", "more"], "properties": {
            "changes": {"type": "array", "items": _ref("Change")},
            "next": {"type": "string", "description": "the cursor to ask with next time"},
            "more": {"type": "boolean", "description": "more changes are waiting: ask again at once"}}},
            "Changes"), **_problems(400, 410, 422)}}},
    "/users": {
        "get": {"summary": "The tenant's users (admin scope)",
                "responses": {"200": _json({"type": "object", "required": ["users"], "properties": {
                    "users": {"type": "array", "items": _ref("User")}}}, "Users"), **_problems(403)}},
        "post": {"summary": "Create a user (admin scope)", "requestBody": _body(_ref("UserRequest")),
                 "responses": {"201": _json(_ref("User"), "Created"), **_problems(400, 403, 409, 422)}}},
    "/users/{login}": {
        "parameters": _LOGIN,
        "get": {"summary": "Read a user (admin scope)", "responses": {"200": _json(_ref("User"), "The user"),
                                                                       **_problems(403, 404)}},
        "delete": {"summary": "Remove a user with their calendars (admin scope); bookings and connections only "
                              "when confirmed",
                   "description": _REMOVAL,
                   "parameters": [_CONFIRM],
                   "responses": {"204": {"description": "Removed"}, **_problems(403, 404, 409, 422)}}},
}


def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "calbridge booking API", "version": "1"},
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearer": []}],
        "paths": PATHS,
        "components": {"schemas": SCHEMAS,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                                      "description": "a service token (calbridge token create)"}}},
    }
