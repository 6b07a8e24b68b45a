"""Real local stand-ins for the document pipeline: moto's S3 server and the Veryfi
stand-in (tests/veryfi_standin.py), both on 127.0.0.1 with ports picked by the OS."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests

from pipelines import StepContext
from pipelines.retry import Backoff
from services import s3
from services import veryfi as veryfi_module
from services.veryfi import RetryRules
from tests.veryfi_standin import VeryfiStandIn

ROOT = Path(__file__).resolve().parents[2]
RECEIPT = ROOT / "services" / "samples" / "receipt.pdf"
BUCKET = "orbit-test-documents"

# Distinctive values, so a test can prove none of them leaks into logs or results.
AWS_ACCESS_KEY_ID = "AKIAORBITTESTKEY7788"
AWS_SECRET_ACCESS_KEY = "aws-secret-7788-do-not-log-Zq2Wm4"
VERYFI_API_KEY = "veryfi-api-key-do-not-log-4f1c9a"
VERYFI_CLIENT_SECRET = "veryfi-secret-do-not-log-8b3e71"
SECRETS = (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, VERYFI_API_KEY, VERYFI_CLIENT_SECRET)

#: Fast in-attempt retries for tests: the rules' shape, with delays in tens of ms.
FAST_RULES = RetryRules(max_tries=3, backoff=Backoff(base=0.02, factor=2, cap=0.1), max_wait=5)


@pytest.fixture(scope="session")
def moto_endpoint():
    from moto.server import ThreadedMotoServer

    # The stand-in's access log is S3's log, not Orbit's: it shows presigned URLs in full.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture
def s3_env(moto_endpoint, monkeypatch, settings):
    """S3 settings pointing at moto, with an empty bucket; returns the variables set."""
    requests.post(f"{moto_endpoint}/moto-api/reset", timeout=10).raise_for_status()
    variables = {
        "AWS_ENDPOINT_URL_S3": moto_endpoint,
        "AWS_ACCESS_KEY_ID": AWS_ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": AWS_SECRET_ACCESS_KEY,
        "AWS_S3_BUCKET": BUCKET,
        "AWS_REGION": "us-east-1",
    }
    for name in ("AWS_ENDPOINT_URL_S3", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, variables[name])
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)
    settings.AWS_S3_BUCKET = BUCKET
    settings.AWS_REGION = "us-east-1"
    s3_client().create_bucket(Bucket=BUCKET)
    yield variables
    s3._client.cache_clear()


def s3_client() -> Any:
    """A plain boto3 client for assertions (the code under test has its own)."""
    return boto3.client("s3", region_name="us-east-1")


@pytest.fixture
def veryfi_standin():
    with VeryfiStandIn(api_key=VERYFI_API_KEY, client_secret=VERYFI_CLIENT_SECRET) as standin:
        yield standin


@pytest.fixture
def veryfi_env(veryfi_standin, settings, monkeypatch):
    """Veryfi settings pointing at the stand-in, with fast in-attempt retries."""
    variables = {
        **veryfi_standin.settings(),
        "VERYFI_TIMEOUT": "5000",
        "VERYFI_FILE_TRANSFER": "url",
    }
    for name, value in variables.items():
        setattr(settings, name, int(value) if name == "VERYFI_TIMEOUT" else value)
    monkeypatch.setattr(veryfi_module, "DEFAULT_RULES", FAST_RULES)
    return variables


@pytest.fixture
def documents_env(s3_env, veryfi_env, documents_root):
    """Everything the document pipeline needs, as environment variables for subprocesses."""
    return {**s3_env, **veryfi_env, "ORBIT_DOCUMENTS_ROOT": str(documents_root)}


@pytest.fixture
def receipt(documents_root) -> Path:
    """A copy of the shipped sample receipt in the documents folder (tests may delete or
    grow it)."""
    copy = documents_root / "receipt.pdf"
    copy.write_bytes(RECEIPT.read_bytes())
    return copy


class StepLog(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    @property
    def messages(self) -> list[str]:
        return [r.getMessage() for r in self.records]


@pytest.fixture
def step_log():
    return StepLog()


@pytest.fixture
def make_ctx(step_log):
    """Build the StepContext a worker would give a step."""

    def build(
        step: str,
        *,
        metadata: dict[str, Any] | None = None,
        prev_results: dict[str, Any] | None = None,
        run_id: str | None = None,
        timeout: float = 60.0,
    ) -> StepContext:
        run_id = run_id or str(uuid.uuid4())
        log = logging.getLogger(f"tests.services.step.{uuid.uuid4().hex}")
        log.handlers = [step_log]
        log.setLevel(logging.DEBUG)
        log.propagate = False
        return StepContext(
            run_id=run_id,
            pipeline="document-processing",
            step=step,
            metadata=metadata or {},
            prev_results=prev_results or {},
            attempt=1,
            idempotency_key=f"{run_id}:{step}",
            log=log,
            deadline=datetime.now(UTC) + timedelta(seconds=timeout),
        )

    return build
