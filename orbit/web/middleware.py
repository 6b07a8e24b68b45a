"""Request and response guards for every page and the API: loopback-only while DEBUG is on,
a strict Content-Security-Policy, `Cache-Control: no-store` on the API and the dashboard,
413 for oversized bodies and 411 for chunked ones, 422 for JSON nested too deeply, and 429
over the rate limits.

Each is a thin class over a function that decides; refusals on `/api/` are JSON in the
API's error shape (`{"detail": ...}`, see orbit/api/site.py), elsewhere plain text.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import Resolver404, resolve, reverse
from django.utils.cache import add_never_cache_headers

from orbit.core.clients import client_address
from orbit.core.conf import Rate, orbit_settings
from orbit.core.limits import nested_deeper_than
from orbit.web.ratelimit import limiter
from orbit.web.ratelimit.limiter import Verdict, digest

API_PREFIX = "/api/"
#: The API's own description (no data, no authentication) is not rate-limited.
API_DOCS = frozenset({"/api/docs", "/api/openapi.json"})
BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

Handler = Callable[[HttpRequest], HttpResponse]


def is_api(request: HttpRequest) -> bool:
    return request.path_info.startswith(API_PREFIX)


def refuse(request: HttpRequest, detail: str, status: int, **extra: Any) -> HttpResponse:
    """A refusal in the API's JSON error shape on `/api/`, plain text elsewhere."""
    if is_api(request):
        return JsonResponse({"detail": detail, **extra}, status=status)
    return HttpResponse(detail, status=status, content_type="text/plain; charset=utf-8")


class DebugLoopbackOnlyMiddleware:
    """With DEBUG on, 403 for any client not on this host: a debug page shows settings and
    local variables, and a Host header alone proves nothing about who sent it. The settings
    refuse to start with DEBUG on and ALLOWED_HOSTS beyond loopback names (docs/SECURITY.md)."""

    def __init__(self, get_response: Handler) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if settings.DEBUG and not _is_loopback(str(request.META.get("REMOTE_ADDR", ""))):
            return HttpResponse(
                "DEBUG is on: this server answers only clients on its own host. "
                "Set DEBUG=False to serve others.\n",
                status=403,
                content_type="text/plain; charset=utf-8",
            )
        return self.get_response(request)


def _is_loopback(address: str) -> bool:
    """Whether the peer is on this host. No address at all means no network peer: a unix
    socket, or a caller in this process."""
    if not address:
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


class ContentSecurityPolicyMiddleware:
    """Adds ORBIT_CONTENT_SECURITY_POLICY to every response that has none yet.

    Orbit's pages carry no inline script or style (htmx is a static file configured by a
    meta tag), so the default policy allows only this origin's files. A view, or Django 6's
    own CSP middleware when configured, may set the header first; it is then left alone.
    """

    def __init__(self, get_response: Handler) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if settings.DEBUG and response.status_code in (404, 500):
            return response  # Django's debug pages are styled and scripted inline
        response.headers.setdefault(
            "Content-Security-Policy", orbit_settings.content_security_policy
        )
        return response


class NoStoreMiddleware:
    """`Cache-Control: no-store` (with Django's other never-cache headers) on every answer
    of the API and the dashboard: they hold run data, metadata and errors, which must not
    stay in a browser's history cache or a shared proxy. The admin does the same itself."""

    def __init__(self, get_response: Handler) -> None:
        self.get_response = get_response
        self._dashboard: str | None = None

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if is_api(request) or request.path_info.startswith(self.dashboard_prefix):
            add_never_cache_headers(response)
        return response

    @property
    def dashboard_prefix(self) -> str:
        if self._dashboard is None:
            self._dashboard = reverse("dashboard:overview")
        return self._dashboard


class RequestSizeLimitMiddleware:
    """413 for a body declared larger than DATA_UPLOAD_MAX_MEMORY_SIZE, before anything
    reads it: Django's own check answers 400, and files in a multipart body escape it.

    The views that take a file (UPLOAD_VIEWS) may receive up to ORBIT_MAX_UPLOAD_BYTES
    plus room for the metadata beside it. A chunked body, which has no length to check,
    is refused with 411: Django would read it as empty and act on nothing."""

    def __init__(self, get_response: Handler) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if _is_chunked(request):
            return refuse(
                request,
                "Chunked request bodies are not accepted: send the body with a Content-Length",
                411,
            )
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        try:
            size = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            size = 0  # Django refuses a malformed length itself
        if limit is not None and size > limit and size > _upload_limit(request):
            return refuse(request, "The request body is too large", 413)
        return self.get_response(request)


#: The views that take a file, by URL name: the API's upload endpoint and the dashboard's
#: "Run now" form (orbit/api/pipelines.py, orbit/console/dashboard/urls.py).
UPLOAD_VIEWS = frozenset({"api:pipeline-run-upload", "dashboard:pipeline-run"})
#: Room in an upload's body beyond the file and the metadata: multipart headers, the token.
UPLOAD_OVERHEAD = 64 * 1024


def _upload_limit(request: HttpRequest) -> int:
    """The largest body the view at this path accepts, when it takes a file; else 0."""
    try:
        view = resolve(request.path_info).view_name
    except Resolver404:
        return 0
    if view not in UPLOAD_VIEWS:
        return 0
    return orbit_settings.max_upload_bytes + orbit_settings.max_metadata_bytes + UPLOAD_OVERHEAD


def _is_chunked(request: HttpRequest) -> bool:
    # With Transfer-Encoding: chunked, a Content-Length means nothing (HTTP/1.1 says to
    # ignore it), so it does not matter whether one came too.
    return "chunked" in str(request.META.get("HTTP_TRANSFER_ENCODING", "")).lower()


class JsonDepthLimitMiddleware:
    """422 for an API body nested deeper than ORBIT_MAX_JSON_DEPTH: deep nesting costs
    recursion everywhere the data goes later (validation, storage, pages)."""

    def __init__(self, get_response: Handler) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if is_api(request) and request.method in BODY_METHODS and _is_json(request):
            depth = orbit_settings.max_json_depth
            if too_deep(request.body, depth):
                detail = f"The JSON body is nested deeper than {depth} levels"
                errors = [{"field": "body", "message": detail}]
                return refuse(request, detail, 422, errors=errors)
        return self.get_response(request)


def _is_json(request: HttpRequest) -> bool:
    return (request.content_type or "").endswith("json") and bool(request.body)


def too_deep(body: bytes, limit: int) -> bool:
    """Whether a JSON document nests objects and arrays more than `limit` levels deep.
    Text that is not JSON is not too deep: the API answers it with its own 400."""
    try:
        value = json.loads(body)
    except RecursionError:
        return True
    except ValueError:
        return False
    return nested_deeper_than(value, limit)


class RateLimitMiddleware:
    """429 with Retry-After past ORBIT_API_RATE_LIMIT (each token or user, and each address,
    on `/api/`) or ORBIT_LOGIN_RATE_LIMIT (each username, and each address, on login POSTs).

    After the authentication middleware: a session's user is known; a token is counted by
    a digest of the key, before it is checked, so a flood of bad keys is limited too."""

    def __init__(self, get_response: Handler) -> None:
        self.get_response = get_response
        self._login_path: str | None = None

    def __call__(self, request: HttpRequest) -> HttpResponse:
        verdict = self._check(request)
        if not verdict.allowed:
            response = refuse(request, _refusal(request, verdict), 429)
            response["Retry-After"] = str(verdict.retry_after)
            return response
        return self.get_response(request)

    def _check(self, request: HttpRequest) -> Verdict:
        if is_api(request) and request.path_info not in API_DOCS:
            return _hit(api_keys(request), orbit_settings.api_rate_limit)
        if request.method == "POST" and request.path == self.login_path:
            return _hit(login_keys(request), orbit_settings.login_rate_limit)
        return limiter.ALLOWED

    @property
    def login_path(self) -> str:
        if self._login_path is None:
            self._login_path = reverse("admin:login")
        return self._login_path


def _hit(keys: list[str], rate: Rate | None) -> Verdict:
    return limiter.hit(keys, rate) if rate else limiter.ALLOWED


def api_keys(request: HttpRequest) -> list[str]:
    """The counters an API request spends: its address, and its token or session user."""
    keys = [f"api:addr:{client_address(request)}"]
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        keys.append(f"api:token:{digest(credentials.strip())}")
    elif getattr(request, "user", None) is not None and request.user.is_authenticated:
        keys.append(f"api:user:{request.user.pk}")
    return keys


def login_keys(request: HttpRequest) -> list[str]:
    """The counters a login attempt spends: its address, and the username it tries."""
    keys = [f"login:addr:{client_address(request)}"]
    username = login_name(request.POST.get("username", ""))
    if username:
        keys.append(f"login:user:{digest(username)}")
    return keys


def login_name(username: object) -> str:
    """A username as the login limit counts it: normalised as Django does before it looks
    the user up (NFKC: `operator` with a fullwidth `o` logs in as `operator`), then
    casefolded, so no look-alike or other case of a name gets an allowance of its own."""
    return AbstractBaseUser.normalize_username(str(username).strip()).casefold()


def _refusal(request: HttpRequest, verdict: Verdict) -> str:
    wait = f"{verdict.retry_after} second{'s' if verdict.retry_after != 1 else ''}"
    if is_api(request):
        return f"Too many requests; retry in {wait} (ORBIT_API_RATE_LIMIT)"
    return f"Too many login attempts from this address or for this user; try again in {wait}."
