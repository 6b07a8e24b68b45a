"""Links made from data (a stored URL, a URL in a step's result or an outside service's
answer) are only ever http or https: `javascript:`, `data:` and the like stay text."""

from __future__ import annotations

from urllib.parse import urlsplit

LINK_SCHEMES = frozenset({"http", "https"})


def http_url(value: object) -> str:
    """`value` when it is an absolute http(s) URL, else an empty string (render no link)."""
    text = str(value or "").strip()
    if any(ord(c) < 0x20 or c.isspace() for c in text):
        return ""  # browsers drop tabs and newlines inside URLs; refuse rather than guess
    try:
        parts = urlsplit(text)
    except ValueError:
        return ""
    return text if parts.scheme.lower() in LINK_SCHEMES and parts.netloc else ""
