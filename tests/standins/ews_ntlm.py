"""The server side of NTLM over HTTP for the EWS stand-in, as IIS does it for Exchange: a NEGOTIATE token gets
a 401 with a CHALLENGE, an AUTHENTICATE token whose NTLMv2 response matches the user's password authenticates
the request and its TCP connection, and later requests on that connection need no token (IIS authenticates
connections, not requests, and requests_ntlm relies on it: it sends every request bare first).

Only NTLMv2 is accepted (what pyspnego, under requests_ntlm, sends); the MIC and channel bindings are not
checked, nor is signing offered. The message codecs and MD4 are pyspnego's (an exchangelib dependency)."""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets
from datetime import UTC, datetime

from spnego._ntlm_raw.crypto import ntowfv2
from spnego._ntlm_raw.md4 import md4
from spnego._ntlm_raw.messages import (
    Authenticate,
    AvId,
    Challenge,
    FileTime,
    Negotiate,
    NegotiateFlags,
    NTLMMessage,
    TargetInfo,
)

_FLAGS = (NegotiateFlags.unicode | NegotiateFlags.request_target | NegotiateFlags.ntlm
          | NegotiateFlags.always_sign | NegotiateFlags.target_type_domain | NegotiateFlags.extended_session_security
          | NegotiateFlags.target_info | NegotiateFlags.key_128)
_DOMAIN = "EXAMPLE"
_PENDING = 64  # challenges kept: a client may answer on another pooled connection than it negotiated on


class NtlmAcceptor:
    """NTLM state of one stand-in: outstanding challenges and the connections they authenticated."""

    def __init__(self) -> None:
        self._challenges: list[bytes] = []
        self._connections: dict[object, str] = {}  # (client host, port) -> login

    def forget(self, login: str) -> None:
        """A changed password: the connections authenticated as ``login`` have to authenticate again."""
        self._connections = {key: value for key, value in self._connections.items() if value != login}

    def login_of(self, connection: object) -> str | None:
        """The login a connection authenticated as, if it did."""
        return self._connections.get(connection)

    def step(self, token: str) -> tuple[str, str, bytes, bytes] | str | None:
        """A NEGOTIATE token: the CHALLENGE to answer (base64). An AUTHENTICATE token: (domain, user, NTLMv2
        proof, the rest of the response) for :meth:`verify`. Anything else: None."""
        try:
            message = NTLMMessage.unpack(base64.b64decode(token, validate=True))
        except (binascii.Error, ValueError, KeyError):
            return None
        if isinstance(message, Negotiate):
            challenge = secrets.token_bytes(8)
            self._challenges = [challenge, *self._challenges][:_PENDING]
            info = TargetInfo()
            info[AvId.nb_domain_name] = _DOMAIN
            info[AvId.nb_computer_name] = "EXCH01"
            info[AvId.dns_domain_name] = "example.test"
            info[AvId.dns_computer_name] = "exch01.example.test"
            info[AvId.timestamp] = FileTime.from_datetime(datetime.now(UTC))
            answer = Challenge(flags=_FLAGS, server_challenge=challenge, target_name=_DOMAIN, target_info=info)
            return base64.b64encode(answer.pack()).decode()
        if isinstance(message, Authenticate) and message.nt_challenge_response:
            response = message.nt_challenge_response
            if len(response) <= 24:  # NTLMv1: refused
                return None
            return message.domain_name or "", message.user_name or "", response[:16], response[16:]
        return None

    def verify(self, connection: object, login: str, password: str, answer: tuple[str, str, bytes, bytes]) -> bool:
        """Whether ``answer`` proves ``password`` for one of the outstanding challenges; if so the challenge is
        spent and ``connection`` is authenticated as ``login``."""
        domain, user, proof, blob = answer
        key = ntowfv2(user, md4(password.encode("utf-16-le")), domain)
        for challenge in self._challenges:
            if hmac.compare_digest(hmac.new(key, challenge + blob, "md5").digest(), proof):
                self._challenges.remove(challenge)
                self._connections[connection] = login
                return True
        return False
