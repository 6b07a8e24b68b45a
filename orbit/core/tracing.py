"""OpenTelemetry traces: off unless the standard OTEL_* variables turn them on.

This is the one module that imports `opentelemetry`, and only once tracing is turned on,
so Orbit runs without the `otel` extra installed. Everything else calls the functions
here; while tracing is off each costs one test of a module flag: no span is built, no
context is read, nothing is written (docs/TRACING.md, "Cost when off").

Turned on at startup (`configure`, from the app's `ready`) when OTEL_TRACES_EXPORTER
names an exporter other than `none` and OTEL_SDK_DISABLED is not `true`. The other
OTEL_* variables (OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES, OTEL_TRACES_SAMPLER,
OTEL_PROPAGATORS, OTEL_BSP_*, the exporter's own) keep their standard meaning.

Spans end in one processor of Orbit's own, `_Relay`, set on the process's tracer provider
once: in a process that exports it hands spans to the exporters' batch processors; in a
step's child process (runs/child.py) it sends them to the supervisor over the child's
pipe instead (`relay_to`), so children hold no exporter, no connection and no thread that
their `os._exit` could cut short, and their spans are exported by the worker that
outlives them (`export_relayed`).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from typing import Any

from django.core.exceptions import ImproperlyConfigured

logger = logging.getLogger(__name__)

#: The exporter entry points' group, as the OpenTelemetry SDK and distro name it.
EXPORTER_GROUP = "opentelemetry_traces_exporter"
#: service.name when neither OTEL_SERVICE_NAME nor OTEL_RESOURCE_ATTRIBUTES gives one.
DEFAULT_SERVICE_NAME = "orbit"
#: The instrumentation scope of Orbit's own spans.
SCOPE = "orbit"
#: The longest `tracestate` carried on (the W3C minimum a vendor must keep); a longer
#: one, which any caller may send, is dropped rather than stored with every run it queues.
TRACESTATE_MAX = 512

_on = False
_relay: Any = None  # the _Relay on the provider, made once per process
_provider: Any = None

#: A span as it crosses a child's pipe: plain values only (see `_snapshot`).
Snapshot = dict[str, Any]


def enabled() -> bool:
    """Whether this process traces: the one test everything else makes first."""
    return _on


def exporter_names(environ: Mapping[str, str]) -> list[str]:
    """The exporters the environment asks for; none while tracing is off."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return []
    names = [n.strip() for n in environ.get("OTEL_TRACES_EXPORTER", "").split(",")]
    return [n for n in names if n and n != "none"]


def configure(environ: Mapping[str, str] | None = None) -> None:
    """Turn tracing on when the environment says so (see the module docstring); refuse
    to start, naming the variable, when it asks for what is not installed."""
    env = os.environ if environ is None else environ
    names = exporter_names(env)
    if not names or _on:
        return
    try:
        from importlib.metadata import entry_points

        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        raise ImproperlyConfigured(
            "OTEL_TRACES_EXPORTER is set, but OpenTelemetry is not installed: "
            "pip install 'orbit[otel]' (or unset OTEL_TRACES_EXPORTER)"
        ) from None
    processors = []
    for name in names:
        found = entry_points(group=EXPORTER_GROUP, name=name)
        if not found:
            known = ", ".join(sorted(ep.name for ep in entry_points(group=EXPORTER_GROUP)))
            raise ImproperlyConfigured(
                f"OTEL_TRACES_EXPORTER names {name!r}, which no installed package provides "
                f"(installed: {known or 'none'}; `otlp` comes with opentelemetry-exporter-otlp)"
            )
        exporter = next(iter(found)).load()()
        processors.append(BatchSpanProcessor(exporter))
    start(processors[0] if len(processors) == 1 else _Fanout(processors))


def start(processor: Any) -> None:
    """Trace from now on, ending spans in `processor` (an SDK SpanProcessor). `configure`
    calls it with the exporters' batch processors; tests with an in-memory exporter's."""
    global _on
    _setup()
    _relay.target = processor
    _on = True


def stop() -> None:
    """Stop tracing: flush what is waiting, then build no more spans."""
    global _on
    if not _on:
        return
    flush()
    _on = False
    _relay.target = None


def flush(timeout_millis: int = 5000) -> None:
    """Export every ended span now. The worker calls it as its loop ends: runworker
    leaves by `os._exit`, so nothing registered with `atexit` would run."""
    if _on and _relay.target is not None:
        _relay.target.force_flush(timeout_millis)


def _setup() -> None:
    """The process's tracer provider, once, with Orbit's relay as its processor."""
    global _provider, _relay
    if _provider is not None:
        return
    from opentelemetry import trace
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider

    class Relay(SpanProcessor):
        """Hands ended spans to `target` (a processor) or to `send` (a child's pipe)."""

        def __init__(self) -> None:
            self.target: Any = None
            self.send: Callable[[Snapshot], None] | None = None

        def on_start(self, span: Any, parent_context: Any = None) -> None:
            if self.send is None and self.target is not None:
                self.target.on_start(span, parent_context=parent_context)

        def on_end(self, span: Any) -> None:
            if self.send is not None:
                try:
                    self.send(_snapshot(span))
                except (OSError, ValueError):  # the supervisor is gone: nobody to export it
                    pass
            elif self.target is not None:
                self.target.on_end(span)

        def shutdown(self) -> None:
            if self.target is not None:
                self.target.shutdown()

        def force_flush(self, timeout_millis: int = 30000) -> bool:
            return bool(self.target.force_flush(timeout_millis)) if self.target else True

    resource = Resource.create()
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: DEFAULT_SERVICE_NAME}))
    provider = TracerProvider(resource=resource)
    relay = Relay()
    provider.add_span_processor(relay)
    trace.set_tracer_provider(provider)  # step code's trace.get_tracer() reaches it
    _provider, _relay = provider, relay


class _Fanout:
    """Several exporters' processors as one (OTEL_TRACES_EXPORTER=otlp,console)."""

    def __init__(self, processors: list[Any]) -> None:
        self.processors = processors

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        for p in self.processors:
            p.on_start(span, parent_context=parent_context)

    def on_end(self, span: Any) -> None:
        for p in self.processors:
            p.on_end(span)

    def shutdown(self) -> None:
        for p in self.processors:
            p.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return all([p.force_flush(timeout_millis) for p in self.processors])


# -- spans ------------------------------------------------------------------------------


def start_span(
    name: str,
    *,
    parent: Mapping[str, str] | Any = None,
    attributes: Mapping[str, Any] | None = None,
    kind: str = "INTERNAL",
) -> Any:
    """A started span (not made current), or None while tracing is off. `parent` is a
    carrier (a dict of W3C headers: a root span when empty), a span, or None for the
    current context."""
    if not _on:
        return None
    from opentelemetry import propagate, trace

    if parent is None:
        context = None
    elif isinstance(parent, Mapping):
        context = propagate.extract(dict(parent))
    else:
        context = trace.set_span_in_context(parent)
    return _provider.get_tracer(SCOPE).start_span(
        name, context=context, kind=trace.SpanKind[kind], attributes=dict(attributes or {})
    )


def end_span(
    span: Any,
    *,
    attributes: Mapping[str, Any] | None = None,
    error: str = "",
    error_type: str = "",
    stacktrace: str = "",
) -> None:
    """Set the last attributes and, for a failure, the error (status and an exception
    event, as the semantic conventions name them), then end `span`. None: nothing."""
    if span is None or not span.is_recording():
        return
    from opentelemetry.trace import Status, StatusCode

    if attributes:
        span.set_attributes(dict(attributes))
    if error or error_type:
        span.set_status(Status(StatusCode.ERROR, error or error_type))
        event = {"exception.type": error_type, "exception.message": error}
        if stacktrace:
            event["exception.stacktrace"] = stacktrace
        span.add_event("exception", event)
    span.end()


def carrier(span: Any = None) -> dict[str, str]:
    """The W3C trace context of `span` (or of the current context) as headers, through
    the configured propagator, without baggage and bounded; empty while tracing is off
    or when there is none."""
    if not _on:
        return {}
    from opentelemetry import propagate, trace

    headers: dict[str, str] = {}
    context = trace.set_span_in_context(span) if span is not None else None
    propagate.inject(headers, context=context)
    headers.pop("baggage", None)  # application data, not trace context: not stored in runs
    if len(headers.get("tracestate", "")) > TRACESTATE_MAX:
        del headers["tracestate"]
    return headers


@contextlib.contextmanager
def attached(headers: Mapping[str, str]) -> Iterator[None]:
    """Make the context in `headers` current for the block (a step's child process runs
    its step under the step span this way)."""
    if not _on or not headers:
        yield
        return
    from opentelemetry import context, propagate

    token = context.attach(propagate.extract(dict(headers)))
    try:
        yield
    finally:
        context.detach(token)


_NOTHING: AbstractContextManager[Any] = contextlib.nullcontext()


def using(span: Any) -> AbstractContextManager[Any]:
    """Make `span` current for a block (log records written in it carry its ids)
    without ending it; nothing at all for None."""
    if span is None:
        return _NOTHING
    from opentelemetry import trace

    return trace.use_span(span, end_on_exit=False)


def current_ids() -> tuple[str, str] | None:
    """The current span's trace and span ids as hex, for log records; None without one."""
    if not _on:
        return None
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return f"{context.trace_id:032x}", f"{context.span_id:016x}"


# -- a step's child process -------------------------------------------------------------


def relay_to(send: Callable[[Snapshot], None]) -> None:
    """In a step's child process: send ended spans through `send` (its pipe) instead of
    exporting them here."""
    if _on:
        _relay.send = send


def _snapshot(span: Any) -> Snapshot:
    """An ended span as plain values (the SDK's spans do not pickle)."""

    def ctx(c: Any) -> tuple[int, int, int, bool, list[tuple[str, str]]] | None:
        if c is None:
            return None
        return (c.trace_id, c.span_id, int(c.trace_flags), c.is_remote, list(c.trace_state.items()))

    scope = span.instrumentation_scope
    return {
        "name": span.name,
        "context": ctx(span.context),
        "parent": ctx(span.parent),
        "kind": span.kind.name,
        "start": span.start_time,
        "end": span.end_time,
        "attributes": dict(span.attributes or {}),
        "events": [(e.name, dict(e.attributes or {}), e.timestamp) for e in span.events],
        "links": [(ctx(link.context), dict(link.attributes or {})) for link in span.links],
        "status": (span.status.status_code.name, span.status.description),
        "scope": (scope.name, scope.version, scope.schema_url) if scope else None,
    }


def export_relayed(snapshot: Snapshot) -> None:
    """A span a step's child process sent: export it as this process's own."""
    if not _on or _relay.target is None:
        return
    from opentelemetry.sdk.trace import Event, ReadableSpan
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope
    from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags
    from opentelemetry.trace.span import TraceState

    def ctx(values: Any) -> SpanContext | None:
        if values is None:
            return None
        trace_id, span_id, flags, remote, state = values
        return SpanContext(
            trace_id,
            span_id,
            is_remote=remote,
            trace_flags=TraceFlags(flags),
            trace_state=TraceState(state),
        )

    try:
        code, description = snapshot["status"]
        scope = snapshot["scope"]
        span = ReadableSpan(
            name=snapshot["name"],
            context=ctx(snapshot["context"]),
            parent=ctx(snapshot["parent"]),
            resource=_provider.resource,
            attributes=snapshot["attributes"],
            events=[Event(n, a, timestamp=t) for n, a, t in snapshot["events"]],
            links=[Link(c, a) for c, a in ((ctx(c), a) for c, a in snapshot["links"]) if c],
            kind=SpanKind[snapshot["kind"]],
            status=Status(StatusCode[code], description),
            start_time=snapshot["start"],
            end_time=snapshot["end"],
            instrumentation_scope=InstrumentationScope(*scope) if scope else None,
        )
    except (KeyError, TypeError, ValueError):  # never let a span stop the supervisor
        logger.warning("A step's span could not be read; dropped", exc_info=True)
        return
    _relay.target.on_end(span)
