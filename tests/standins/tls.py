"""The tests' certificate authority: stand-ins serve TLS with a certificate it issued for 127.0.0.1 and
localhost, and clients trust it through ``ca_file()`` (adapters: ``Account.ca_file``; requests, under
google-auth and msal: a session whose ``verify`` is that file). The official libraries insist on HTTPS, so
nothing is patched to let them talk to a stand-in."""

from __future__ import annotations

import atexit
import functools
import os
import ssl
import tempfile

import trustme


@functools.cache
def authority() -> trustme.CA:
    return trustme.CA()


@functools.cache
def ca_file() -> str:
    """The CA's certificate as a PEM file, removed when the test process ends."""
    handle, path = tempfile.mkstemp(prefix="calbridge-test-ca-", suffix=".pem")
    os.close(handle)
    authority().cert_pem.write_to_path(path)
    atexit.register(os.unlink, path)
    return path


@functools.cache
def server_files() -> tuple[str, str]:
    """(certificate chain, private key) of the loopback server certificate, as files."""
    issued = authority().issue_cert("127.0.0.1", "localhost")
    directory = tempfile.mkdtemp(prefix="calbridge-test-tls-")
    chain, key = os.path.join(directory, "chain.pem"), os.path.join(directory, "key.pem")
    with open(chain, "wb") as out:
        for blob in issued.cert_chain_pems:
            out.write(blob.bytes())
    issued.private_key_pem.write_to_path(key)
    return chain, key


def client_context() -> ssl.SSLContext:
    """A verifying client context that trusts the tests' CA only."""
    return ssl.create_default_context(cafile=ca_file())
