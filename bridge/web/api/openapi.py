"""The OpenAPI 3.1 document of /api/v1, served at /api/v1/openapi.json.

Written by hand next to the routes; a test checks that it is valid, that it names every
route of the app and nothing else, and that real answers match its schemas.
"""

from __future__ import annotations

from typing import Any

TIME = {"type": "string", "format": "date-time", "description": "RFC 3339 with a UTC offset"}
DURATION = {"oneOf": [{"type": "string", "pattern": "^P", "description": "ISO 8601 duration, e.g. PT30M"},
                      {"type": "integer", "minimum": 1, "description": "minutes"}]}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _problems(*statuses: int) -> dict[str, Any]:
    titles = {400: "Malformed JSON", 401: "No valid bearer token", 403: "Token lacks the admin scope",
              404: "Not found (or another tenant's)", 409: "Conflict", 413: "Body too large",
              422: "Invalid request"}
    return {str(status): {"description": titles[status],
                          "content": {"application/problem+json": {"schema": _ref("Problem")}}}
            for status in (401, *statuses)}


def _body(schema: dict[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


SCHEMAS: dict[str, Any] = {
    "Problem": {"type": "object", "required": ["type", "title", "status"], "properties": {
        "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
        "detail": {"type": "string"}, "instance": {"type": "string"}, "field": {"type": "string"},
        "conflicts": {"type": "array", "items": _ref("BusyPeriod")}}},
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
        "url": {"type": "string"}}},
    "CalendarRequest": {"type": "object", "required": ["owner", "slug"], "properties": {
        "owner": {"type": "string"}, "slug": {"type": "string"}, "timezone": {"type": "string"},
        "name": {"type": "string"}}},
    "User": {"type": "object", "required": ["login", "email", "role", "language"], "properties": {
        "login": {"type": "string"}, "email": {"type": "string"},
        "role": {"enum": ["admin", "member", "service"]}, "language": {"enum": ["de", "en"]}}},
    "UserRequest": {"type": "object", "required": ["login", "email", "password"], "properties": {
        "login": {"type": "string"}, "email": {"type": "string"}, "password": {"type": "string", "minLength": 8},
        "role": {"enum": ["admin", "member", "service"]}, "language": {"enum": ["de", "en"]}}},
}

_BOOKING_ID = [{"name": "booking_id", "in": "path", "required": True, "schema": {"type": "string"}}]
_CALENDAR_ID = [{"name": "calendar_id", "in": "path", "required": True, "schema": {"type": "integer"}}]
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
        "delete": {"summary": "Remove a calendar with its events and bookings (admin scope)",
                   "responses": {"204": {"description": "Removed"}, **_problems(403, 404)}}},
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
        "delete": {"summary": "Remove a user with their calendars (admin scope)",
                   "responses": {"204": {"description": "Removed"}, **_problems(403, 404)}}},
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
