from django.contrib import admin
from django.urls import include, path

from orbit.api.health import healthz
from orbit.api.prometheus import metrics_view
from orbit.api.site import api

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", api.urls),
    path("metrics", metrics_view, name="metrics"),
    path("healthz", healthz, name="healthz"),
    path("dashboard/", include("orbit.console.dashboard.urls")),
]
