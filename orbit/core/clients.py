"""Who is calling: the client's address, as the rate limiter and the audit trail both see it."""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

from orbit.core.conf import orbit_settings

if TYPE_CHECKING:
    from django.http import HttpRequest


def client_address(request: HttpRequest) -> str:
    """The caller's IP address: REMOTE_ADDR, or with ORBIT_TRUSTED_PROXIES = n, the address
    n entries from the end of X-Forwarded-For (what the nearest trusted proxy saw)."""
    proxies = orbit_settings.trusted_proxies
    forwarded = str(request.META.get("HTTP_X_FORWARDED_FOR", ""))
    if proxies and forwarded:
        hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
        if len(hops) >= proxies and _is_ip(hops[-proxies]):
            return hops[-proxies]
    return str(request.META.get("REMOTE_ADDR") or "unknown")


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True
