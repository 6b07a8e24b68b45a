"""Only http and https URLs from data become links."""

from __future__ import annotations

import pytest

from orbit.core.links import http_url


@pytest.mark.parametrize(
    ("value", "linked"),
    [
        ("https://bucket.s3.amazonaws.com/a.pdf", True),
        ("http://example.com/x?y=1", True),
        ("HTTPS://EXAMPLE.COM/", True),  # schemes are case-insensitive
        ("javascript:alert(1)", False),
        ("JavaScript:alert(1)", False),
        (" javascript:alert(1)", False),
        ("java\tscript:alert(1)", False),  # browsers drop the tab
        ("data:text/html,<script>alert(1)</script>", False),
        ("vbscript:msgbox", False),
        ("//evil.example.com/x", False),  # scheme-relative: not absolute
        ("/dashboard/", False),
        ("https://", False),  # no host
        ("", False),
        (None, False),
        (42, False),
    ],
)
def test_http_url_keeps_only_http_and_https(value, linked):
    assert http_url(value) == (str(value).strip() if linked else "")
