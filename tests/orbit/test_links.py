"""Only http and https URLs from data become links."""

from __future__ import annotations

import pytest
from django.template import Context, Template

from orbit.links import http_url


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


def test_the_template_filter_renders_no_link_for_other_schemes():
    template = Template(
        "{% load orbit_links %}{% with u=url|http_url %}"
        '{% if u %}<a href="{{ u }}">file</a>{% else %}{{ url }}{% endif %}{% endwith %}'
    )
    assert template.render(Context({"url": "javascript:alert(1)"})) == "javascript:alert(1)"
    assert template.render(Context({"url": "https://a.example/f"})) == (
        '<a href="https://a.example/f">file</a>'
    )
