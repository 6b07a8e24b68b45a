"""The console's template tags: `orbit_links` links data only when it is an http(s) URL."""

from __future__ import annotations

from django.template import Context, Template


def test_the_template_filter_renders_no_link_for_other_schemes():
    template = Template(
        "{% load orbit_links %}{% with u=url|http_url %}"
        '{% if u %}<a href="{{ u }}">file</a>{% else %}{{ url }}{% endif %}{% endwith %}'
    )
    assert template.render(Context({"url": "javascript:alert(1)"})) == "javascript:alert(1)"
    assert template.render(Context({"url": "https://a.example/f"})) == (
        '<a href="https://a.example/f">file</a>'
    )
