"""Secrets in metadata, results and logs: stored as the step needs them, masked on the way
out through the API, the admin, the dashboard and the worker's log lines."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orbit.core.logs import JsonFormatter, TextFormatter
from orbit.core.redaction import MASK, is_secret_key, redact, redact_logs, redact_text, unmask
from orbit.core.tokens import create_token
from pipelines.models import Pipeline
from runs.foreground import ForegroundRunner
from runs.models import Run, Step, StepLog
from tests.api.conftest import Api, make_user

PASSWORD = "pw-hunter2-db"
API_KEY = "key-4b1d-nested"
BEARER = "tok-9f8e7d"
DEEP = "deep-secret-x7"
DSN_PASSWORD = "dsn-pw-31337"
CAMEL = "pk-camel-5151"
COOKIE = "ck-session-9393"

METADATA = {
    "db": {"user": "bob", "password": PASSWORD},
    "headers": {"X-Api-Key": API_KEY, "Authorization": f"Bearer {BEARER}"},
    "targets": [{"name": "eu", "auth": [{"client_secret": DEEP}]}],
    "conn": {
        "dsn": f"postgres://bob:{DSN_PASSWORD}@db.internal:5432/orbit",
        "privateKey": CAMEL,
        "sessionCookie": COOKIE,
    },
    "note": "nothing secret here",
}
SECRETS = (PASSWORD, API_KEY, BEARER, DEEP, DSN_PASSWORD, CAMEL, COOKIE)


# --- The masking itself -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        # a key containing a fragment, in any case, with - read as _
        (
            {"db_password": "x", "X-Api-Key": "y", "AUTHORIZATION": "z"},
            dict.fromkeys(("db_password", "X-Api-Key", "AUTHORIZATION"), MASK),
        ),
        # the whole value under a secret key goes, whatever its type
        ({"secrets": {"a": 1}, "tokens": [1, 2]}, {"secrets": MASK, "tokens": MASK}),
        # dicts in lists in dicts, any depth
        (
            {"a": [{"b": {"c": [{"password": "x", "n": 1}]}}]},
            {"a": [{"b": {"c": [{"password": MASK, "n": 1}]}}]},
        ),
        # other keys and scalars are untouched
        ({"idempotency_key": "k", "count": 3}, {"idempotency_key": "k", "count": 3}),
        ("password", "password"),
        (None, None),
    ],
)
def test_redact_masks_secret_keys_at_any_depth(value, shown):
    assert redact(value) == shown


@pytest.mark.parametrize(
    "key",
    [
        "privateKey",  # camelCase
        "PrivateKey",  # PascalCase
        "private-key",  # kebab-case
        "PRIVATE_KEY",  # upper snake_case
        "private key",  # words
        "sshPrivateKeyPem",  # inside a longer name
        "pwd",
        "dbPwd",
        "passphrase",
        "sshPassphrase",
        "cookie",
        "Set-Cookie",
        "sessionCookie",
        "signing_key",
        "signingKey",
        "JWT-Signing-Key",
        "apiKey",
        "clientSecret",
        "accessToken",
        "x-api-key",
    ],
)
def test_key_names_match_whatever_their_case_and_separators(key):
    assert redact({key: "s3cr3t"}) == {key: MASK}


@pytest.mark.parametrize("key", ["keyboard", "monkey", "private", "signing", "cookbook", "note"])
def test_names_that_only_resemble_a_secret_are_shown(key):
    assert redact({key: "v"}) == {key: "v"}


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("postgres://orbit:hunter2@db:5432/orbit", f"postgres://orbit:{MASK}@db:5432/orbit"),
        ("redis://:hunter2@cache:6379/0", f"redis://:{MASK}@cache:6379/0"),
        ("amqp://u:p%40ss@mq/vhost", f"amqp://u:{MASK}@mq/vhost"),  # encoded characters
        ("https://u:pa@ss@host/x", f"https://u:{MASK}@host/x"),  # an unencoded @ in it
        ("https://user@host/path", "https://user@host/path"),  # no password: unchanged
        ("https://host/a?b=c:d@e", "https://host/a?b=c:d@e"),  # not in the authority
        ("see http://example.com", "see http://example.com"),
    ],
)
def test_the_password_in_a_url_is_masked_wherever_it_is(value, shown):
    assert redact({"database_url": value}) == {"database_url": shown}
    assert redact([value]) == [shown]
    assert redact_text(f"connecting to {value} failed") == f"connecting to {shown} failed"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        # a query string as HTTP clients encode it
        (
            "?dsn=postgres%3A%2F%2Fu%3Ahunter2%40db%2Fx",
            f"?dsn=postgres%3A%2F%2Fu%3A{MASK}%40db%2Fx",
        ),
        # lower-case escapes; the next parameter is not masked
        ("?a=redis%3a%2f%2f%3ahunter2%40cache&b=1", f"?a=redis%3a%2f%2f%3a{MASK}%40cache&b=1"),
        # no password: unchanged
        ("?u=https%3A%2F%2Fuser%40host%2Fp", "?u=https%3A%2F%2Fuser%40host%2Fp"),
    ],
)
def test_a_percent_encoded_url_password_in_free_text_is_masked(text, shown):
    assert redact_text(f"GET /api/runs{text}") == f"GET /api/runs{shown}"


def test_a_masked_url_sent_back_keeps_the_stored_password():
    stored = {"database_url": "postgres://orbit:hunter2@db/orbit", "other": "x"}
    sent = {"database_url": f"postgres://orbit:{MASK}@db/orbit", "other": "y"}
    assert unmask(sent, stored) == {
        "database_url": "postgres://orbit:hunter2@db/orbit",
        "other": "y",
    }
    changed = {"database_url": f"postgres://orbit:{MASK}@db2/orbit"}  # a new host: as sent
    assert unmask(changed, stored) == changed


def test_redact_leaves_the_original_alone():
    value = {"db": {"password": "x"}}
    redact(value)
    assert value == {"db": {"password": "x"}}


def test_the_keys_are_configurable(settings):
    settings.ORBIT_REDACT_KEYS = ["pin"]
    assert redact({"card_pin": 1234, "password": "x"}) == {"card_pin": MASK, "password": "x"}


def test_a_key_read_before_the_keys_changed_is_read_again(settings):
    """Which names are secret is remembered per name and per setting (every log line reads
    the same few), so a changed setting applies to names already seen."""
    assert redact({"card_pin": 1234}) == {"card_pin": 1234}
    settings.ORBIT_REDACT_KEYS = ["pin"]
    assert redact({"card_pin": 1234}) == {"card_pin": MASK}
    assert is_secret_key("card_pin")


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("login with password=hunter2 now", f"login with password={MASK} now"),
        ('{"api_key": "abc", "n": 1}', f'{{"api_key": {MASK}, "n": 1}}'),
        ("{'client_secret': 'abc'}", f"{{'client_secret': {MASK}}}"),
        ("GET /x?token=abc&page=2", f"GET /x?token={MASK}&page=2"),
        ("sent Authorization: Bearer abc.def", f"sent Authorization: {MASK} {MASK}"),
        ("retrying with Bearer abc.def", f"retrying with Bearer {MASK}"),
        ("the token expired", "the token expired"),  # no value follows: nothing to mask
        ("privateKey=abc and pwd: def", f"privateKey={MASK} and pwd: {MASK}"),  # camelCase
        ("Cookie: session=abc", f"Cookie: {MASK}"),
        ('{"signingKey": "abc"}', f'{{"signingKey": {MASK}}}'),
    ],
)
def test_redact_text_masks_values_written_next_to_secret_keys(text, shown):
    assert redact_text(text) == shown


def test_redact_logs_masks_messages_and_fields():
    records = [{"message": "password=x", "fields": {"token": "t", "n": 2}, "level": "INFO"}]
    assert redact_logs(records) == [
        {"message": f"password={MASK}", "fields": {"token": MASK, "n": 2}, "level": "INFO"}
    ]


def test_unmask_keeps_the_stored_secret_behind_a_mask():
    stored = {"db": {"password": "real", "host": "a"}, "list": [{"token": "t"}]}
    sent = {"db": {"password": MASK, "host": "b"}, "list": [{"token": MASK}], "new": MASK}
    assert unmask(sent, stored) == {
        "db": {"password": "real", "host": "b"},
        "list": [{"token": "t"}],
        "new": MASK,  # nothing stored under it: kept as sent
    }


# --- Through every output ---------------------------------------------------------------------


@pytest.fixture
def secret_run(transactional_db, test_pipelines):
    result = ForegroundRunner("t-secrets").execute(metadata=METADATA)
    assert result.success, result
    return Run.objects.get(id=result.run_id)


def test_the_stored_data_keeps_what_the_step_needs(secret_run):
    step = Step.objects.get(run=secret_run)
    assert secret_run.metadata == METADATA
    assert step.result["echo"] == METADATA
    assert step.result["seen"] == [{"db_password": PASSWORD}]
    assert f"password={PASSWORD}" in StepLog.objects.filter(step=step).first().message


@pytest.fixture
def superuser_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("root", "r@example.com", "pw"))
    return client


OUTPUTS = [
    # (where, path); {run} and {step} are filled in
    ("api", "/api/runs"),
    ("api", "/api/runs/{run}"),
    ("api", "/api/runs/{run}/steps"),
    ("api", "/api/steps/{step}"),
    ("api", "/api/steps/{step}/logs"),
    ("admin", "/admin/runs/run/{run}/change/"),
    ("admin", "/admin/runs/step/{step}/change/"),
    ("dashboard", "/dashboard/runs/{run}/"),
]


@pytest.mark.parametrize(("where", "path"), OUTPUTS)
def test_secrets_are_masked_in_every_output(secret_run, superuser_client, where, path):
    step = Step.objects.get(run=secret_run)
    url = path.format(run=secret_run.id, step=step.id)
    if where == "api":
        _, key = create_token(make_user("api-user", is_superuser=True), "t")
        response = Api(key).get(url)
    else:
        response = superuser_client.get(url)
    assert response.status_code == 200
    body = response.content.decode()
    for secret in SECRETS:
        assert secret not in body, (url, secret)
    assert MASK in body
    assert "bob" in body  # what is not secret is still shown


def test_the_api_masks_pipeline_default_metadata_and_keeps_it_on_a_round_trip(db, test_pipelines):
    pipeline = Pipeline.objects.get(name="t-single")
    pipeline.default_metadata = {"region": "eu", "auth": {"api_key": API_KEY}}
    pipeline.save()
    _, key = create_token(make_user("root", is_superuser=True), "t")
    api = Api(key)
    shown = api.get(f"/api/pipelines/{pipeline.id}").json()["default_metadata"]
    assert shown == {"region": "eu", "auth": {"api_key": MASK}}
    shown["region"] = "us"
    response = api.patch(f"/api/pipelines/{pipeline.id}", {"default_metadata": shown})
    assert response.status_code == 200
    pipeline.refresh_from_db()
    assert pipeline.default_metadata == {"region": "us", "auth": {"api_key": API_KEY}}


@pytest.mark.parametrize("formatter", [TextFormatter(), JsonFormatter()], ids=["text", "json"])
def test_worker_log_lines_mask_fields_and_messages(formatter):
    record = logging.LogRecord(
        "runs.execution", logging.INFO, __file__, 1, "metadata %s", (METADATA,), None
    )
    record.metadata = METADATA
    line = formatter.format(record)
    for secret in SECRETS:
        assert secret not in line
    assert "nothing secret here" in line


def test_the_admin_shows_pipeline_defaults_masked_to_viewers_and_whole_to_editors(
    db, test_pipelines, client
):
    pipeline = Pipeline.objects.get(name="t-single")
    pipeline.default_metadata = {"region": "eu", "auth": {"api_key": API_KEY}}
    pipeline.save()
    url = f"/admin/pipelines/pipeline/{pipeline.id}/change/"
    client.force_login(make_user("viewer", ("pipelines.view_pipeline",), is_staff=True))
    page = client.get(url).content.decode()
    assert API_KEY not in page
    assert MASK in page
    client.force_login(make_user("editor", is_superuser=True, is_staff=True))
    form = client.get(url).content.decode()
    assert API_KEY in form  # in the edit field, where saving must keep it


def test_secrets_in_error_messages_and_tracebacks_are_never_stored(
    transactional_db, test_pipelines
):
    result = ForegroundRunner("t-leaky-error").execute(
        metadata={"password": "hunter2-secret", "dsn": "mysql://app:dsn-secret@db/app"}
    )
    assert not result.success
    run = Run.objects.get(id=result.run_id)
    step = Step.objects.get(run=run)
    attempt = step.attempt_records.get()
    for text in (run.error, step.error, step.traceback, attempt.error, attempt.traceback):
        assert "hunter2-secret" not in text and "abc.def" not in text
        assert "dsn-secret" not in text
    assert f"mysql://app:{MASK}@db/app" in attempt.error
    assert f"password={MASK}" in attempt.error
    assert "ValueError" in attempt.traceback  # the rest of the traceback is kept


# The quick test that lets a log line skip the key pattern (orbit.core.redaction._may_hold_secret)
# must never let through a line the pattern would mask: spellings of the keys in any case,
# with separators, with the characters `re.IGNORECASE` folds (the long s, the dotless i,
# the Kelvin sign), among other text.
_SPELLINGS = st.sampled_from(
    [
        "password",
        "PassWord",
        "pass-word",
        "pa_ss.wd",
        "pa\u017f\u017fword",
        "ap\u0131Key",
        "API key",
        "privateKey",
        "SIGNING_KEY",
        "Set-Cookie",
        "tOKen",
        "bearer",
        "BASIC",
        "secret",
    ]
)
_NOISE = st.text(alphabet=st.sampled_from("ab xyz=:'\",;-_.\u017f\u0131K0/@"), max_size=12)


@given(
    before=_NOISE,
    key=_SPELLINGS,
    sep=st.sampled_from(["=", ": ", " = ", "= "]),
    value=_NOISE,
    after=_NOISE,
)
def test_the_quick_test_never_lets_a_secret_through(
    before: str, key: str, sep: str, value: str, after: str
) -> None:
    from orbit.core.conf import orbit_settings
    from orbit.core.redaction import _BEARER, _may_hold_secret, _text_pattern

    text = f"{before}{key}{sep}v{value} {after}"
    fragments = orbit_settings.redact_keys
    masked = _text_pattern(fragments).sub(rf"\1\2{MASK}", _BEARER.sub(rf"\1 {MASK}", text))
    if masked != text:
        assert _may_hold_secret(text, fragments)


@given(text=st.text(alphabet=st.characters(max_codepoint=127), max_size=60))
def test_the_quick_test_reads_ascii_text_as_the_general_squash_does(text: str) -> None:
    """ASCII text takes a shortcut (bytes, one search); it must answer as the squash of any
    text does: case-folded, every character but a-z and 0-9 dropped, each name looked for."""
    from orbit.core.conf import orbit_settings
    from orbit.core.redaction import _SEPARATORS, _may_hold_secret

    fragments = orbit_settings.redact_keys
    squashed = _SEPARATORS.sub("", text.casefold())
    expected = any(name in squashed for name in (*fragments, "bearer", "basic"))
    assert _may_hold_secret(text, fragments) == expected
    # The same text made non-ASCII by a letter the squash drops: the general way.
    assert _may_hold_secret(f"{text}\u00e9", fragments) == expected


def test_a_line_with_no_secret_is_left_as_it_is_without_the_pattern() -> None:
    line = "Run 019ae3c2-7c1b-7a9e-8f3e-2b1c0d4e5f60 of bench-noop succeeded in 12 ms"
    assert redact_text(line) == line
    assert (
        redact_text(line + " ap\u0131Key=4 pa\u017f\u017fword=5")
        == line + f" ap\u0131Key={MASK} pa\u017f\u017fword={MASK}"
    )
