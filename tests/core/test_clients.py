"""The client's address, as the rate limiter and the audit trail see it."""

from __future__ import annotations

import pytest
from django.test import RequestFactory

from orbit.core.clients import client_address


@pytest.mark.parametrize(
    ("proxies", "forwarded", "address"),
    [
        (0, "203.0.113.7", "10.0.0.1"),  # no trusted proxy: the header is the client's word
        (1, "203.0.113.7", "203.0.113.7"),  # one proxy appended what it saw
        (1, "198.51.100.1, 203.0.113.7", "203.0.113.7"),  # the client's own claim is ignored
        (2, "198.51.100.1, 203.0.113.7, 10.0.0.5", "203.0.113.7"),  # two proxies
        (2, "203.0.113.7", "10.0.0.1"),  # fewer hops than proxies: not trusted
        (1, "not-an-address", "10.0.0.1"),
    ],
)
def test_the_client_address(settings, proxies, forwarded, address):
    settings.ORBIT_TRUSTED_PROXIES = proxies
    request = RequestFactory().get("/", REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR=forwarded)
    assert client_address(request) == address
