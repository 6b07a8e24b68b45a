"""The SSRF guard: webhooks go only to public http(s) addresses.

A webhook URL is typed by an admin but fetched by the workers, from inside the network:
without a guard it could make them POST to the metadata service (169.254.169.254), the
database host or anything on localhost. So, at save time and again at send time:

- the scheme is http or https, the URL has a host and no user:password part;
- the host is resolved and *every* address it resolves to must be public: loopback,
  private, link-local, multicast, reserved, unspecified and other non-global addresses
  (and IPv6 addresses carrying one: IPv4-mapped, 6to4, Teredo) are refused, unless
  ORBIT_WEBHOOK_ALLOW_PRIVATE is on;
- the URL is plain ASCII (an international name in its xn-- form);
- the sender then connects to an address it checked (runs/webhooks/transport.py), not
  to the name again, so a DNS answer that changes between check and connect (DNS
  rebinding) cannot steer it elsewhere; redirects are never followed.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from orbit.core.conf import orbit_settings
from orbit.core.exceptions import TargetRefused

SCHEMES = {"http": 80, "https": 443}
ALLOW_SETTING = "ORBIT_WEBHOOK_ALLOW_PRIVATE"

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Target:
    """Where one POST goes: the URL's parts and the addresses checked for it."""

    scheme: str
    host: str  # as written: the Host header and the name TLS checks
    port: int
    path: str  # with its query
    addresses: tuple[str, ...]

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == SCHEMES[self.scheme] else f"{host}:{self.port}"


def refused_kind(address: Address) -> str | None:
    """Why `address` is no place to send a webhook (a word for the error), or None. An
    IPv6 address that carries an IPv4 one (IPv4-mapped, 6to4, Teredo's client) is judged
    by that IPv4 address: 2002:a9fe:a9fe:: is 169.254.169.254 wherever a 6to4 relay is."""
    if isinstance(address, ipaddress.IPv6Address):
        carried = address.ipv4_mapped or address.sixtofour
        if carried is None and address.teredo is not None:
            carried = address.teredo[1]
        if carried is not None:
            return refused_kind(carried)
    for kind, flag in (
        ("unspecified", address.is_unspecified),
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("reserved", address.is_reserved),
        ("private", address.is_private),
    ):
        if flag:
            return kind
    if not address.is_global:
        return "non-public"
    return None


def split(url: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, path) of an http(s) URL; TargetRefused for anything else."""
    text = str(url or "").strip()
    if any(ord(c) < 0x20 or c.isspace() for c in text):
        raise TargetRefused("The URL contains spaces or control characters")
    if not text.isascii():  # it could never be sent: HTTP's request line is ASCII
        raise TargetRefused(
            "The URL must be plain ASCII: write an international host name in its xn-- "
            "form and percent-encode the path"
        )
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise TargetRefused(f"The URL is not valid: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise TargetRefused(f"Only http and https URLs are allowed, not {scheme or 'none'!r}")
    if not parts.hostname:
        raise TargetRefused("The URL has no host")
    if parts.username is not None or parts.password is not None:
        raise TargetRefused("The URL may not carry a user name or password; use the secret")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return scheme, parts.hostname, port or SCHEMES[scheme], path


def resolve(host: str, port: int) -> list[Address]:
    """Every address `host` resolves to (an address literal: itself)."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise TargetRefused(f"Cannot resolve {host!r}: {exc}") from None
    addresses: list[Address] = []
    for *_, sockaddr in found:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise TargetRefused(f"Cannot resolve {host!r}: no addresses")
    return addresses


def check(url: str, *, allow_private: bool | None = None) -> Target:
    """The target of `url` with its checked addresses; TargetRefused with the reason."""
    allow = orbit_settings.webhook_allow_private if allow_private is None else allow_private
    scheme, host, port, path = split(url)
    addresses = resolve(host, port)
    if not allow:
        for address in addresses:
            kind = refused_kind(address)
            if kind is not None:
                shown = host if host == str(address) else f"{host} ({address})"
                raise TargetRefused(
                    f"Refused: {shown} is a {kind} address; webhooks go only to public "
                    f"addresses unless {ALLOW_SETTING} is on (the SSRF guard)"
                )
    return Target(scheme, host, port, path, tuple(str(a) for a in addresses))
