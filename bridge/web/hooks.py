"""``/hooks``: change notices that Google and Microsoft Graph post to the bridge (see bridge.sync.push).

A notice only makes the connection's next run due now; the run fetches what changed through the adapter, so
nothing in a notice is trusted beyond "something changed", and nothing of its content is kept or logged.
Notices are answered at once (Graph allows 3 seconds, and refuses a subscription whose validation request
is not echoed within 10); an unknown channel or a wrong token gets 404 / 403 and changes nothing.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route, Router

from bridge.store import channels
from bridge.store.db import Store

log = logging.getLogger(__name__)

MAX_NOTICE_BYTES = 256 * 1024  # a Graph batch holds at most a few hundred short notices


def create_hooks(store: Store) -> Router:
    def notice(provider: str, channel_id: str, token: str) -> int | None:
        with store.write() as session:
            return channels.notice(session, provider, channel_id, token, datetime.now(UTC))

    async def google(request: Request) -> Response:
        channel_id = request.headers.get("X-Goog-Channel-ID", "")
        token = request.headers.get("X-Goog-Channel-Token", "")
        state = request.headers.get("X-Goog-Resource-State", "")
        if not channel_id:
            return PlainTextResponse("not a Google channel notice", status_code=400)
        if state == "sync":  # the channel's first message: it works, nothing changed yet
            known = await run_in_threadpool(_known, store, "google", channel_id, token)
            return Response(status_code=200 if known else 404)
        connection_id = await run_in_threadpool(notice, "google", channel_id, token)
        if connection_id is None:
            log.info("google notice for an unknown channel or with a wrong token")
            return Response(status_code=404)
        return Response(status_code=200)

    async def microsoft(request: Request) -> Response:
        validation = request.query_params.get("validationToken")
        if validation is not None:  # the subscription handshake: echo the token as plain text
            return PlainTextResponse(validation)
        body = await _bounded_body(request)
        if body is None:
            return PlainTextResponse("notice too large", status_code=413)
        try:
            entries = json.loads(body)["value"]
            pairs = [(str(entry["subscriptionId"]), str(entry.get("clientState") or "")) for entry in entries]
        except (ValueError, KeyError, TypeError):
            return PlainTextResponse("not a Graph change notification", status_code=400)
        matched = 0
        for subscription_id, client_state in pairs:
            if await run_in_threadpool(notice, "microsoft", subscription_id, client_state) is not None:
                matched += 1
        if pairs and not matched:
            log.info("graph notices for unknown subscriptions or with a wrong clientState")
            return Response(status_code=403)
        return Response(status_code=202)

    return Router(routes=[Route("/google", google, methods=["POST"]),
                          Route("/microsoft", microsoft, methods=["POST"])])


def _known(store: Store, provider: str, channel_id: str, token: str) -> bool:
    with store.read() as session:
        channel = channels.of_channel(session, provider, channel_id)
        return channel is not None and channels.token_matches(channel, token)


async def _bounded_body(request: Request) -> bytes | None:
    received = bytearray()
    async for chunk in request.stream():
        received.extend(chunk)
        if len(received) > MAX_NOTICE_BYTES:
            return None
    return bytes(received)
