"""The admin of every app, registered when Django's autodiscovery imports this package."""

from orbit.console.admin import orbit, pipelines, runs, services, webhooks

__all__ = ["orbit", "pipelines", "runs", "services", "webhooks"]
