"""A server span per request while tracing is on (docs/TRACING.md).

The span continues the caller's trace when the request carries W3C `traceparent` /
`tracestate` headers (read through the configured propagator), and is current while the
view runs: a run enqueued by the request stores it as its parent (runs/enqueueing.py),
and log records written meanwhile carry its ids. While tracing is off the middleware
costs one flag test per request.

Orbit writes its own instead of depending on opentelemetry-instrumentation-django: a
few lines, and no dependency beyond the API and the SDK.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from orbit.core import tracing

Handler = Callable[[HttpRequest], HttpResponse]


def request_headers(request: HttpRequest) -> dict[str, str]:
    """The request's headers as a propagator reads them (lower case, dashes)."""
    return {
        key[5:].lower().replace("_", "-"): str(value)
        for key, value in request.META.items()
        if key.startswith("HTTP_")
    }


class TracingMiddleware:
    """First in the chain, so the span covers every other middleware too."""

    def __init__(self, get_response: Handler) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not tracing.enabled():
            return self.get_response(request)
        span = tracing.start_span(
            request.method or "HTTP",
            parent=request_headers(request),
            kind="SERVER",
            attributes={
                "http.request.method": request.method or "",
                "url.path": request.path,
                "url.scheme": request.scheme or "",
            },
        )
        status = 500
        try:
            with tracing.using(span):
                response = self.get_response(request)
            status = response.status_code
            return response
        finally:
            route = getattr(request.resolver_match, "route", "") if request.resolver_match else ""
            if route:
                span.update_name(f"{request.method} /{route.lstrip('^')}")
            tracing.end_span(
                span,
                attributes={
                    "http.response.status_code": status,
                    **({"http.route": route} if route else {}),
                },
                error=f"HTTP {status}" if status >= 500 else "",
            )
