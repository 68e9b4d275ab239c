"""A tenant's account may not point the server at its own or a private network unless the operator allows it:
loopback, private, link-local (a cloud's metadata service), shared and IPv4-mapped loopback addresses are refused,
by literal or by a name that resolves to one; public addresses and names that do not resolve pass (the account
test then says the server cannot be reached)."""

from __future__ import annotations

import pytest

from bridge.sync.connection_admin import PrivateAddress, refuse_private_address


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:5232/dav/", "https://localhost/cal.ics", "https://10.1.2.3/", "https://192.168.178.20/remote.php",
    "http://169.254.169.254/latest/meta-data/", "https://[::1]:8443/", "https://[::ffff:127.0.0.1]/",
    "https://100.64.0.7/", "https://[fe80::1%25eth0]/", "http://0.0.0.0/",
])
def test_local_and_private_servers_are_refused(url: str) -> None:
    with pytest.raises(PrivateAddress, match="provider_private_networks"):
        refuse_private_address(url)


@pytest.mark.parametrize("url", ["https://8.8.8.8/", "https://[2001:4860:4860::8888]/", "https://name.invalid/",
                                 "", "not a url"])
def test_public_addresses_and_unresolvable_names_pass(url: str) -> None:
    refuse_private_address(url)
