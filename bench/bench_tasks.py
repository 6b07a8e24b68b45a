"""A `@task` no-op for `make bench`: the same function the django-tasks-db side drains
(../shared/bench/peers/djproj/benchtasks.py), here served by Orbit's backend."""

try:  # Django 6
    from django.tasks import task
except ImportError:  # Django 5.2: the backport
    from django_tasks import task


@task()
def noop() -> None:
    return None
