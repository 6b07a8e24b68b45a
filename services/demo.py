"""Local stand-ins for S3 and Veryfi, so a new user can watch the document pipeline work
without accounts: moto's S3 server and the Veryfi stand-in from tests/, both on
127.0.0.1, with this process's settings pointed at them while the block runs."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

SAMPLE_RECEIPT = Path(__file__).resolve().parent / "samples" / "receipt.pdf"
DEMO_BUCKET = "orbit-demo"
_S3_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "demo",
    "AWS_SECRET_ACCESS_KEY": "demo",
}


@dataclass(frozen=True)
class StandIns:
    s3_endpoint: str
    veryfi_base_url: str
    bucket: str
    veryfi: Any  # tests.veryfi_standin.VeryfiStandIn: scripts failures for --with-failures


@contextmanager
def local_standins(*, bucket: str = DEMO_BUCKET) -> Iterator[StandIns]:
    """Start both stand-ins, point settings and boto3 at them, and undo it all on exit.

    Step processes are forked from this one, so they inherit the changed settings."""
    try:
        from moto.server import ThreadedMotoServer

        from tests.veryfi_standin import VeryfiStandIn
    except ImportError as exc:
        raise ImproperlyConfigured(
            f"The demo needs the development extras ({exc.name} is missing): "
            "pip install -e '.[dev]'"
        ) from None
    import logging

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's access log
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    veryfi = VeryfiStandIn(client_secret="demo-client-secret").start()
    host, port = moto.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    saved_env = {
        name: os.environ.get(name)
        for name in (*_S3_ENVIRONMENT, "AWS_ENDPOINT_URL_S3", "AWS_PROFILE", "AWS_SESSION_TOKEN")
    }
    overrides = {
        "AWS_S3_BUCKET": bucket,
        "AWS_REGION": "us-east-1",
        "VERYFI_TIMEOUT": 30_000,
        "VERYFI_FILE_TRANSFER": "url",
        **veryfi.settings(),
    }
    saved_settings = {name: getattr(settings, name, None) for name in overrides}
    try:
        os.environ.update({**_S3_ENVIRONMENT, "AWS_ENDPOINT_URL_S3": endpoint})
        os.environ.pop("AWS_PROFILE", None)
        os.environ.pop("AWS_SESSION_TOKEN", None)
        for name, value in overrides.items():
            setattr(settings, name, value)
        from services import s3

        s3.client().create_bucket(Bucket=bucket)
        yield StandIns(endpoint, veryfi.base_url, bucket, veryfi)
    finally:
        for name, value in saved_settings.items():
            setattr(settings, name, value)
        for name, old in saved_env.items():
            if old is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = old
        veryfi.stop()
        moto.stop()
