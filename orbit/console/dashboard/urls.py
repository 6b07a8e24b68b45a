"""The dashboard's URLs, mounted at /dashboard/ by orbit/urls.py."""

from __future__ import annotations

from django.urls import path

from orbit.console.dashboard import views

app_name = "dashboard"

urlpatterns = [
    path("", views.overview_page, name="overview"),
    path("runs/", views.runs_page, name="runs"),
    path("runs/bulk/", views.runs_bulk_action, name="runs-bulk"),
    path("runs/<uuid:run_id>/", views.run_page, name="run"),
    path("runs/<uuid:run_id>/rerun/", views.run_rerun_action, name="run-rerun"),
    path("runs/<uuid:run_id>/<slug:action>/", views.run_action, name="run-action"),
    path("workers/", views.workers_page, name="workers"),
    path("workers/<int:worker_id>/forget/", views.worker_forget_action, name="worker-forget"),
    path("pipelines/", views.pipelines_page, name="pipelines"),
    path("pipelines/<int:pipeline_id>/run/", views.pipeline_run_now, name="pipeline-run"),
    path("pipelines/<int:pipeline_id>/enabled/", views.pipeline_enabled, name="pipeline-enabled"),
    path("pipelines/<int:pipeline_id>/paused/", views.pipeline_paused, name="pipeline-paused"),
    path(
        "pipelines/<int:pipeline_id>/archived/", views.pipeline_archived, name="pipeline-archived"
    ),
    path("queues/", views.queues_page, name="queues"),
    path("queues/paused/", views.queue_paused, name="queue-paused"),
]
