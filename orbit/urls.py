from django.contrib import admin
from django.http import HttpRequest, HttpResponsePermanentRedirect
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView

from orbit.api.health import healthz
from orbit.api.prometheus import metrics_view
from orbit.api.site import api


def favicon(request: HttpRequest) -> HttpResponsePermanentRedirect:
    """Browsers ask for /favicon.ico on every page that names no icon (the admin's): answer
    it, instead of a 404 logged as a WARNING each time. Resolved per request, so the
    static files' manifest is read only once it exists."""
    return HttpResponsePermanentRedirect(static("orbit/favicon.svg"))


urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", api.urls),
    path("metrics", metrics_view, name="metrics"),
    path("healthz", healthz, name="healthz"),
    path("dashboard/", include("orbit.console.dashboard.urls")),
    path("favicon.ico", favicon, name="favicon"),
    # The site's root is the dashboard (which sends a visitor who is not logged in to the
    # login page): `make run` prints http://127.0.0.1:8000, and that address answered 404.
    # Not permanent, so a deployment may mount something else there later.
    path("", RedirectView.as_view(pattern_name="dashboard:overview"), name="front-door"),
]
