"""The background worker: `python manage.py runworker` / `orbit worker`."""

from runs.worker.worker import Worker

__all__ = ["Worker"]
