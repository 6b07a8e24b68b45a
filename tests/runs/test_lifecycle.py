from __future__ import annotations

import pytest

from orbit.core.exceptions import (
    InvalidMetadata,
    InvalidTransition,
    MetadataTooLarge,
    UnknownPipeline,
)
from runs import enqueue
from runs.lifecycle import run_cancel, run_retry
from runs.models import Run, RunStatus, StepStatus

pytestmark = pytest.mark.django_db


def test_enqueue_lays_out_the_steps_in_order(test_pipelines):
    run = enqueue("t-three", metadata={"a": 1})
    assert run.status == RunStatus.PENDING
    assert list(run.steps.values_list("name", "position", "status")) == [
        ("one", 0, StepStatus.PENDING),
        ("two", 1, StepStatus.PENDING),
        ("three", 2, StepStatus.PENDING),
    ]
    assert Run.objects.claimable().filter(id=run.id).exists()


def test_enqueue_unknown_pipeline_lists_the_known_ones(test_pipelines):
    with pytest.raises(
        UnknownPipeline, match=r"Unknown pipeline 'nope'\. Known pipelines: .*t-single"
    ):
        enqueue("nope")
    assert not Run.objects.exists()


def _nested(levels: int) -> dict[str, object]:
    value: dict[str, object] = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


def test_metadata_nested_to_the_limit_is_accepted(test_pipelines):
    assert enqueue("t-single", metadata=_nested(32)).metadata == _nested(32)


@pytest.mark.parametrize(
    ("metadata", "error", "message"),
    [
        ([1, 2], InvalidMetadata, "Run metadata must be a JSON object, not list"),  # not an object
        ({"x": object()}, InvalidMetadata, "Run metadata is not JSON-serialisable"),  # not JSON
        ({"x": "y" * 300_000}, MetadataTooLarge, "the limit is 262144 bytes"),  # too big
        (_nested(33), InvalidMetadata, "nested deeper than 32 levels"),  # too deep
    ],
)
def test_enqueue_rejects_bad_metadata_and_writes_nothing(test_pipelines, metadata, error, message):
    with pytest.raises(error, match=message):
        enqueue("t-single", metadata=metadata)
    assert not Run.objects.exists()


def test_retry_refuses_a_pending_run(test_pipelines):
    run = enqueue("t-single")
    with pytest.raises(
        InvalidTransition, match="is pending; only failed or cancelled runs can be retried"
    ):
        run_retry(run.id)


def test_cancel_then_retry(test_pipelines):
    run = enqueue("t-single")
    assert run_cancel(run.id).status == RunStatus.CANCELLED
    assert not Run.objects.claimable().exists()
    assert run_retry(run.id).status == RunStatus.PENDING
    assert Run.objects.claimable().filter(id=run.id).exists()
