"""The background worker: `python manage.py runworker` / `orbit worker`."""

from runs.worker.loop import WorkerLoop

__all__ = ["WorkerLoop"]
