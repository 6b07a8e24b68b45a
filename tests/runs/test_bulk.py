from __future__ import annotations

import pytest

from orbit.core.exceptions import InvalidMetadata
from runs.bulk import ActionReport, parse_metadata


@pytest.mark.parametrize(
    ("done", "skipped", "message"),
    [
        (3, {}, "3 runs queued for retry"),
        (1, {}, "1 run queued for retry"),
        (
            3,
            {"it is still running": 1},
            "3 runs queued for retry; 1 skipped because it is still running",
        ),
        (
            0,
            {"it is still running": 2},
            "0 runs queued for retry; 2 skipped because they are still running",
        ),
        (
            1,
            {"it has already succeeded": 2, "it is still pending": 3},  # largest group first
            "1 run queued for retry; 3 skipped because they are still pending; 2 skipped because they have already succeeded",
        ),
    ],
)
def test_action_report_sentences(done, skipped, message):
    report = ActionReport(done=done, verb="queued for retry")
    report.skipped.update(skipped)
    assert report.message() == message


@pytest.mark.parametrize(("text", "value"), [("", {}), ("  ", {}), ('{"a": [1]}', {"a": [1]})])
def test_parse_metadata_accepts_empty_and_objects(text, value):
    assert parse_metadata(text) == value


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('"text"', "Run metadata must be a JSON object, not str"),
        (
            "{'a': 1}",
            "Metadata is not valid JSON: Expecting property name enclosed in double quotes (line 1, column 2)",
        ),
        ('{"a": NaN}', "Run metadata is not JSON-serialisable"),
    ],
)
def test_parse_metadata_refuses_what_is_not_a_json_object(text, message):
    with pytest.raises(InvalidMetadata, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_metadata(text)
