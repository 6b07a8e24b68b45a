"""runs/webhooks/targets.py: the SSRF guard."""

from __future__ import annotations

import ipaddress

import pytest

from orbit.core.exceptions import TargetRefused
from runs.webhooks.targets import check, refused_kind


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),  # the cloud metadata service
        ("fe80::1", "link-local"),
        ("224.0.0.1", "multicast"),
        ("0.0.0.0", "unspecified"),
        ("240.0.0.1", "reserved"),
        ("100.64.0.1", "non-public"),  # carrier-grade NAT: neither private nor global
        ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped IPv6 is the IPv4 address
        ("2002:a9fe:a9fe::", "link-local"),  # 6to4 carrying 169.254.169.254
        ("2002:7f00:1::1", "loopback"),  # 6to4 carrying 127.0.0.1
        ("2002:5db8:d70e::1", None),  # 6to4 carrying a public address
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "private"),  # Teredo, client 192.0.2.45
        ("fc00::1", "private"),  # unique local
        ("93.184.215.14", None),  # public
        ("2606:4700::1111", None),
    ],
)
def test_only_public_addresses_are_allowed(address, kind):
    assert refused_kind(ipaddress.ip_address(address)) == kind


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://example.com/x", "Only http and https URLs are allowed, not 'ftp'"),
        ("file:///etc/passwd", "Only http and https URLs are allowed, not 'file'"),
        ("gopher://127.0.0.1:6379/", "Only http and https URLs are allowed, not 'gopher'"),
        ("http:///path", "The URL has no host"),
        ("http://user:pw@example.com/", "The URL may not carry a user name or password"),
        ("http://exa mple.com/", "The URL contains spaces or control characters"),
        ("http://example.com:99999/", "The URL is not valid"),
        ("https://1.1.1.1/\u202e", "The URL must be plain ASCII"),
        ("https://\uff11.1.1.1/", "The URL must be plain ASCII"),  # a fullwidth digit
        ("https://b\u00fccher.example/", "The URL must be plain ASCII"),
    ],
)
def test_urls_that_are_not_http_to_a_host_are_refused(url, message):
    with pytest.raises(TargetRefused, match=message.replace("(", r"\(")):
        check(url, allow_private=True)


@pytest.mark.parametrize(
    "url",
    ["http://10.0.0.1/", "http://127.0.0.1:8000/hook", "http://[::1]/", "https://169.254.169.254/"],
)
def test_private_targets_are_refused_by_default(url):
    with pytest.raises(TargetRefused, match="ORBIT_WEBHOOK_ALLOW_PRIVATE is on"):
        check(url, allow_private=False)


def test_a_name_is_refused_when_any_of_its_addresses_is_private():
    with pytest.raises(
        TargetRefused, match=r"Refused: localhost \((127\.0\.0\.1|::1)\) is a loopback"
    ):
        check("http://localhost:9/hook", allow_private=False)


def test_the_setting_allows_private_targets_and_the_checked_address_is_kept(settings):
    settings.ORBIT_WEBHOOK_ALLOW_PRIVATE = True
    target = check("http://127.0.0.1:8080/a?b=1")
    assert (target.host, target.port, target.path, target.addresses) == (
        "127.0.0.1",
        8080,
        "/a?b=1",
        ("127.0.0.1",),
    )
    assert target.host_header == "127.0.0.1:8080"
