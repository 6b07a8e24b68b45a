"""factory-boy factories for Orbit's models."""

from __future__ import annotations

import factory

from pipelines.models import Pipeline
from runs.models import Run, Step, StepAttempt, Worker


class PipelineFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Pipeline
        django_get_or_create = ("name",)

    name = "t-single"
    definition = factory.LazyAttribute(lambda o: o.name)


class RunFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Run

    pipeline = factory.SubFactory(PipelineFactory)
    metadata = factory.Dict({})


class StepFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Step

    run = factory.SubFactory(RunFactory)
    name = factory.Sequence(lambda n: f"step-{n}")
    position = factory.Sequence(lambda n: n)


class StepAttemptFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = StepAttempt

    step = factory.SubFactory(StepFactory)
    run = factory.SelfAttribute("step.run")
    number = 1
    outcome = "succeeded"


class WorkerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Worker

    name = factory.Sequence(lambda n: f"host-{n}:{1000 + n}")
    hostname = "host"
    pid = factory.Sequence(lambda n: 1000 + n)
