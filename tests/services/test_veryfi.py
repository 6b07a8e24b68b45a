"""services/veryfi.py against the Veryfi stand-in over real HTTP on 127.0.0.1."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import socket
import time

import pytest

from orbit.core.exceptions import PermanentFailure
from services.exceptions import NotConfigured, VeryfiBadResponse, VeryfiRejected, VeryfiUnavailable
from services.veryfi import RetryRules, VeryfiClient, VeryfiConfig, retry_after_seconds, sign
from tests.services.conftest import FAST_RULES, RECEIPT, VERYFI_API_KEY, VERYFI_CLIENT_SECRET
from tests.veryfi_standin import Fail, Malformed, Slow, VeryfiStandIn

DATA = base64.b64encode(RECEIPT.read_bytes()).decode()


def config_for(standin: VeryfiStandIn, **changes) -> VeryfiConfig:
    values = {
        "client_id": standin.client_id,
        "username": standin.username,
        "api_key": standin.api_key,
        "client_secret": standin.client_secret,
        "base_url": standin.base_url,
        "timeout_ms": 5000,
    }
    return VeryfiConfig(**{**values, **changes})


def client_for(
    standin: VeryfiStandIn, *, rules: RetryRules = FAST_RULES, **changes
) -> VeryfiClient:
    return VeryfiClient(config_for(standin, **changes), rules=rules)


def process(client: VeryfiClient, **extra) -> dict:
    return client.process_document(
        file_name="receipt.pdf", file_data=DATA, external_id="run-1:veryfi-process", **extra
    )


# ------------------------------------------------------------------ the wire format


def test_requests_carry_the_contract_headers_and_a_valid_signature(veryfi_standin):
    document = process(client_for(veryfi_standin), tags=["orbit"])
    assert document["external_id"] == "run-1:veryfi-process"
    request = veryfi_standin.requests[0]
    assert (request.method, request.path, request.status) == (
        "POST",
        "/api/v8/partner/documents/",
        201,
    )
    assert request.headers["CLIENT-ID"] == veryfi_standin.client_id
    assert request.headers["AUTHORIZATION"] == f"apikey standin-user:{VERYFI_API_KEY}"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Accept"] == "application/json"
    timestamp = int(request.headers["X-Veryfi-Request-Timestamp"])
    assert abs(timestamp - time.time() * 1000) < 60_000  # milliseconds, not seconds
    assert list(request.json) == ["file_name", "file_data", "external_id", "tags"]


def test_without_a_client_secret_nothing_is_signed():
    with VeryfiStandIn() as standin:
        process(client_for(standin))
        headers = standin.requests[0].headers
    assert "X-Veryfi-Request-Signature" not in headers
    assert "X-Veryfi-Request-Timestamp" not in headers


def test_the_signature_is_the_sdks_hmac_over_python_str_values():
    body = {
        "file_url": "https://x/y.pdf",
        "tags": ["a", "b"],
        "boost_mode": True,
        "categories": None,
    }
    payload = "timestamp:1700000000000,file_url:https://x/y.pdf,tags:['a', 'b'],boost_mode:True,categories:None"
    expected = base64.b64encode(
        hmac.new(b"s3cret", payload.encode(), hashlib.sha256).digest()
    ).decode()
    assert sign("s3cret", "1700000000000", body) == expected


def test_a_wrong_secret_is_refused_by_the_standin_and_not_retried(veryfi_standin):
    client = client_for(veryfi_standin, client_secret="not-the-secret")
    with pytest.raises(VeryfiRejected) as caught:
        process(client)
    assert (
        str(caught.value)
        == "Veryfi refused the request (HTTP 401): Not Authorized: invalid request signature"
    )
    assert isinstance(caught.value, PermanentFailure)
    assert len(veryfi_standin.requests) == 1


def test_get_and_delete_a_document(veryfi_standin):
    client = client_for(veryfi_standin)
    created = process(client)
    assert client.get_document(created["id"]) == created
    assert client.delete_document(created["id"]) == {"status": "ok"}
    with pytest.raises(
        VeryfiRejected, match=r"^Veryfi refused the request \(HTTP 404\): Document not found$"
    ):
        client.get_document(created["id"])


# ------------------------------------------------------------------ retries


def test_429_waits_for_retry_after_then_succeeds_within_one_call(veryfi_standin):
    veryfi_standin.script(Fail(429, retry_after=1))
    document = process(client_for(veryfi_standin))
    assert document["id"] == 100_000_001
    first, second = veryfi_standin.requests
    assert [first.status, second.status] == [429, 201]
    # Each try is signed afresh: the second timestamp is a second later.
    waited_ms = int(second.headers["X-Veryfi-Request-Timestamp"]) - int(
        first.headers["X-Veryfi-Request-Timestamp"]
    )
    assert 950 <= waited_ms < 3000


@pytest.mark.parametrize(
    "status",
    [
        409,  # access limit reached
        500,
        502,  # a proxy in front of Veryfi
        503,
        504,
    ],
)
def test_transient_statuses_are_retried(veryfi_standin, status):
    veryfi_standin.script(Fail(status))
    assert process(client_for(veryfi_standin))["id"]
    assert [r.status for r in veryfi_standin.requests] == [status, 201]


def test_three_500s_give_up_with_the_last_error(veryfi_standin):
    veryfi_standin.script(Fail(500), Fail(500), Fail(500, "Database unavailable"))
    with pytest.raises(VeryfiUnavailable) as caught:
        process(client_for(veryfi_standin))
    assert (
        str(caught.value)
        == "Veryfi answered HTTP 500: Database unavailable (gave up after 3 tries)"
    )
    assert not isinstance(caught.value, PermanentFailure)
    assert len(veryfi_standin.requests) == 3


@pytest.mark.parametrize(
    ("status", "error", "message"),
    [
        (
            400,
            "Unsupported file type",
            "Veryfi refused the request (HTTP 400): Unsupported file type",
        ),
        (401, "Not Authorized", "Veryfi refused the request (HTTP 401): Not Authorized"),
        (403, "Forbidden", "Veryfi refused the request (HTTP 403): Forbidden"),
        (404, "Document not found", "Veryfi refused the request (HTTP 404): Document not found"),
        (405, "Method not allowed", "Veryfi refused the request (HTTP 405): Method not allowed"),
        (413, "File too large", "Veryfi refused the request (HTTP 413): File too large"),
    ],
)
def test_other_4xx_fail_at_once_with_veryfis_message(veryfi_standin, status, error, message):
    veryfi_standin.script(Fail(status, error))
    with pytest.raises(VeryfiRejected) as caught:
        process(client_for(veryfi_standin))
    assert str(caught.value) == message
    assert caught.value.status == status
    assert len(veryfi_standin.requests) == 1


def test_error_details_are_part_of_the_message(veryfi_standin):
    veryfi_standin.script(Fail(400, "Missing parameters", details=[{"field": "file_url"}]))
    with pytest.raises(VeryfiRejected) as caught:
        process(client_for(veryfi_standin))
    assert str(caught.value) == (
        'Veryfi refused the request (HTTP 400): Missing parameters (details: [{"field": "file_url"}])'
    )


def test_a_slow_answer_times_out_and_is_retried(veryfi_standin):
    veryfi_standin.script(Slow(2))
    client = client_for(veryfi_standin, timeout_ms=300)
    started = time.monotonic()
    assert process(client)["id"]
    assert time.monotonic() - started < 1.5
    assert len(veryfi_standin.process_requests()) == 2


def test_always_slow_gives_up_naming_the_timeout(veryfi_standin):
    veryfi_standin.script(Slow(2), Slow(2), Slow(2))
    with pytest.raises(VeryfiUnavailable) as caught:
        process(client_for(veryfi_standin, timeout_ms=200))
    assert str(caught.value) == (
        "Veryfi did not answer within 0.2 s (VERYFI_TIMEOUT=200 ms) (gave up after 3 tries)"
    )


def test_an_unreachable_api_gives_up_naming_the_host():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again when the test talks to it
    config = VeryfiConfig(
        client_id="c", username="u", api_key="k", base_url=f"http://127.0.0.1:{port}/api/v8/partner"
    )
    with pytest.raises(VeryfiUnavailable) as caught:
        VeryfiClient(config, rules=FAST_RULES).process_document(file_name="r.pdf", file_data=DATA)
    assert (
        str(caught.value)
        == f"Could not reach Veryfi at 127.0.0.1:{port}: Connection refused (gave up after 3 tries)"
    )


def test_a_malformed_answer_fails_the_call_without_retrying(veryfi_standin):
    veryfi_standin.script(Malformed())
    with pytest.raises(VeryfiBadResponse) as caught:
        process(client_for(veryfi_standin))
    assert str(caught.value) == (
        'Veryfi answered HTTP 201 with a body that is not JSON: {"id": 1, "vendor": {"name": "trunc'
    )
    assert len(veryfi_standin.requests) == 1


def test_a_document_without_an_id_is_a_bad_response(veryfi_standin):
    veryfi_standin.script(Malformed(body=b'{"status": "processed"}'))
    with pytest.raises(VeryfiBadResponse, match=r"^Veryfi's answer has no document id: "):
        process(client_for(veryfi_standin))


def test_a_retry_after_longer_than_the_budget_gives_up_at_once(veryfi_standin):
    veryfi_standin.script(Fail(429, retry_after=120))
    started = time.monotonic()
    with pytest.raises(VeryfiUnavailable) as caught:
        process(client_for(veryfi_standin))
    assert time.monotonic() - started < 1
    assert str(caught.value) == (
        "Veryfi answered HTTP 429: Too many requests (gave up after 1 try; the next wait of "
        "120 s is past the 5 s retry budget)"
    )


def test_no_retry_starts_that_the_step_deadline_could_not_hold(veryfi_standin):
    veryfi_standin.script(Fail(503))
    client = VeryfiClient(
        config_for(veryfi_standin), rules=FAST_RULES, deadline=time.monotonic() + 2
    )
    with pytest.raises(VeryfiUnavailable) as caught:
        process(client)  # a retry would need up to the 5 s request timeout
    assert str(caught.value) == (
        "Veryfi answered HTTP 503: Service unavailable (gave up after 1 try; no time left in "
        "this attempt for another try)"
    )


def test_retries_are_logged_without_secrets(veryfi_standin):
    records: list[logging.LogRecord] = []
    log = logging.getLogger("tests.services.veryfi-retries")
    log.addHandler(handler := _ListHandler(records))
    try:
        veryfi_standin.script(Fail(500))
        VeryfiClient(config_for(veryfi_standin), rules=FAST_RULES, log=log).process_document(
            file_name="receipt.pdf", file_data=DATA
        )
    finally:
        log.removeHandler(handler)
    [record] = records
    assert record.getMessage().startswith(
        "Veryfi answered HTTP 500: Internal server error; retrying in 0."
    )
    assert record.getMessage().endswith(" s (try 1 of 3)")
    assert VERYFI_API_KEY not in record.getMessage()


def test_an_error_echoing_the_presigned_url_is_redacted(veryfi_standin):
    url = "https://bucket.s3.amazonaws.com/k.pdf?X-Amz-Signature=abc123&X-Amz-Credential=AKIA"
    veryfi_standin.script(Fail(400, f"URL not downloadable: {url}"))
    with pytest.raises(VeryfiRejected) as caught:
        client_for(veryfi_standin).process_document(file_url=url)
    assert (
        str(caught.value)
        == "Veryfi refused the request (HTTP 400): URL not downloadable: [redacted]"
    )


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("3", 3.0),
        ("0.5", 0.5),
        ("-4", 0.0),  # never negative
        (None, None),
        ("soon", None),  # unreadable: fall back to backoff
    ],
)
def test_retry_after_values(value, seconds):
    assert retry_after_seconds(value) == seconds


def test_retry_after_as_an_http_date():
    from email.utils import formatdate

    assert 1 <= retry_after_seconds(formatdate(time.time() + 3, usegmt=True)) <= 3


# ------------------------------------------------------------------ configuration


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("VERYFI_CLIENT_ID", "VERYFI_CLIENT_ID is not set: the Veryfi client id (Settings > Keys)"),
        ("VERYFI_USERNAME", "VERYFI_USERNAME is not set: the Veryfi account's username"),
        ("VERYFI_API_KEY", "VERYFI_API_KEY is not set: the Veryfi API key"),
    ],
)
def test_a_missing_variable_is_named(veryfi_env, settings, name, message):
    setattr(settings, name, "")
    with pytest.raises(NotConfigured) as caught:
        VeryfiConfig.from_settings()
    assert str(caught.value) == message
    assert isinstance(caught.value, PermanentFailure)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        (
            "VERYFI_API_BASE_URL",
            "api.veryfi.com",
            "VERYFI_API_BASE_URL must be an http(s) URL such as https://api.veryfi.com/api/v8/partner, not 'api.veryfi.com'",
        ),
        ("VERYFI_TIMEOUT", 0, "VERYFI_TIMEOUT must be greater than 0, not 0"),
        ("VERYFI_TIMEOUT", "fast", "VERYFI_TIMEOUT must be a whole number, not 'fast'"),
    ],
)
def test_invalid_values_are_explained(veryfi_env, settings, name, value, message):
    setattr(settings, name, value)
    with pytest.raises(NotConfigured) as caught:
        VeryfiConfig.from_settings()
    assert str(caught.value) == message


def test_the_secret_is_optional_and_never_in_the_repr(veryfi_env, settings):
    settings.VERYFI_CLIENT_SECRET = ""
    config = VeryfiConfig.from_settings()
    assert config.client_secret == ""
    assert config.timeout == 5.0
    settings.VERYFI_CLIENT_SECRET = VERYFI_CLIENT_SECRET
    assert VERYFI_CLIENT_SECRET not in repr(VeryfiConfig.from_settings())
    assert VERYFI_API_KEY not in repr(VeryfiConfig.from_settings())


def test_defaults(settings):
    for name in ("VERYFI_API_BASE_URL", "VERYFI_TIMEOUT"):
        delattr(settings, name)
    settings.VERYFI_CLIENT_ID, settings.VERYFI_USERNAME, settings.VERYFI_API_KEY = "c", "u", "k"
    config = VeryfiConfig.from_settings()
    assert (config.base_url, config.timeout_ms) == (
        "https://api.veryfi.com/api/v8/partner",
        120_000,
    )


class _ListHandler(logging.Handler):
    def __init__(self, sink: list) -> None:
        super().__init__(logging.DEBUG)
        self.sink = sink

    def emit(self, record: logging.LogRecord) -> None:
        self.sink.append(record)


def test_standin_body_is_json(veryfi_standin):
    """The body sent is exactly the JSON that was signed (no re-serialisation)."""
    process(client_for(veryfi_standin))
    assert json.loads(veryfi_standin.requests[0].body)["file_name"] == "receipt.pdf"
