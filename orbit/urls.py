from django.contrib import admin
from django.urls import include, path

from orbit.api import api
from orbit.health import healthz
from runs.prometheus import metrics_view

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", api.urls),
    path("metrics", metrics_view, name="metrics"),
    path("healthz", healthz, name="healthz"),
    path("dashboard/", include("runs.dashboard.urls")),
]
