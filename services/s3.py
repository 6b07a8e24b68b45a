"""S3 through boto3: upload a document, give its URL, presign it for Veryfi, read it back.

Credentials come from boto3's own chain (environment, profile, SSO, instance role) and an
S3-compatible endpoint (MinIO, R2, the local stand-in) from `AWS_ENDPOINT_URL_S3`, which
boto3 reads itself. Transient failures (throttling, 5xx, connection resets) are retried
by boto3's `standard` retry mode; this module adds no second retry loop around it.
"""

from __future__ import annotations

import functools
import os
from typing import IO, Any
from urllib.parse import urlsplit, urlunsplit

import boto3
from boto3.exceptions import S3UploadFailedError
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    NoCredentialsError,
    PartialCredentialsError,
)

from services import conf
from services.documents import safe_name
from services.exceptions import S3Refused, S3Unavailable

PRESIGNED_URL_SECONDS = 15 * 60
_CONFIG = Config(
    signature_version="s3v4",
    retries={"mode": "standard", "max_attempts": 4},
    connect_timeout=10,
    read_timeout=30,
)
# Error codes that mean "the credentials or the policy say no": retrying cannot help.
_DENIED = {
    "AccessDenied",
    "AllAccessDisabled",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "AccountProblem",
}


def client() -> Any:
    """A boto3 S3 client for the current settings, cached per process and configuration."""
    endpoints = (os.environ.get("AWS_ENDPOINT_URL_S3"), os.environ.get("AWS_ENDPOINT_URL"))
    # Keyed on the pid: a forked step process must not share the parent's pooled sockets.
    return _client(os.getpid(), conf.aws_region(), endpoints)


@functools.cache
def _client(pid: int, region: str | None, endpoints: tuple[str | None, str | None]) -> Any:
    return boto3.session.Session().client("s3", region_name=region, config=_CONFIG)


def object_key(idempotency_key: str, file_name: str) -> str:
    """The same key for every attempt of one run's step, so a retry overwrites its own object."""
    prefix = "/".join(part for part in idempotency_key.split(":") if part)
    return f"documents/{prefix}/{safe_name(file_name)}"


def upload(file: IO[bytes], *, bucket: str, key: str, content_type: str) -> None:
    """Upload an open file (multipart above 8 MB, as boto3 decides).

    An open file, not a path: the caller checked this very file (orbit.core.documents), and a
    path could be swapped for another between that check and boto3's own open."""
    try:
        client().upload_fileobj(file, bucket, key, ExtraArgs={"ContentType": content_type})
    except (ClientError, BotoCoreError, S3UploadFailedError) as exc:
        raise failure(exc, bucket=bucket, key=key, action="upload to") from None


def download(*, bucket: str, key: str) -> bytes:
    try:
        body = client().get_object(Bucket=bucket, Key=key)["Body"]
        return bytes(body.read())
    except (ClientError, BotoCoreError) as exc:
        raise failure(exc, bucket=bucket, key=key, action="read") from None


def presigned_url(*, bucket: str, key: str, expires: int = PRESIGNED_URL_SECONDS) -> str:
    """A GET URL anyone holding it can fetch until it expires: pass it on, never log it."""
    try:
        return str(
            client().generate_presigned_url(
                "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=expires
            )
        )
    except (ClientError, BotoCoreError) as exc:
        raise failure(exc, bucket=bucket, key=key, action="presign") from None


def object_url(*, bucket: str, key: str) -> str:
    """The object's plain URL, addressed exactly as boto3 addresses it (virtual-hosted on
    AWS, path-style on a custom endpoint), without any signature."""
    parts = urlsplit(presigned_url(bucket=bucket, key=key, expires=60))
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def failure(exc: BaseException, *, bucket: str, key: str, action: str) -> Exception:
    """The error to raise for a boto3 exception: permanent when retrying cannot help."""
    if isinstance(exc, S3UploadFailedError) and isinstance(exc.__context__, ClientError):
        exc = exc.__context__  # boto3 wraps the ClientError that says what went wrong
    target = f"s3://{bucket}/{key}"
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return S3Refused(
            "No AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
            "or configure a profile or an instance role"
        )
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        message = str(error.get("Message", "")) or code
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        if code == "NoSuchBucket":
            return S3Refused(f"S3 bucket {bucket!r} does not exist (AWS_S3_BUCKET)")
        if code in _DENIED or status == 403:
            return S3Refused(f"S3 denied access to {target}: {code}: {message}")
        if code == "NoSuchKey" or status == 404:
            return S3Refused(f"{target} does not exist")
        if 400 <= status < 500 and status not in (408, 429):
            return S3Refused(f"S3 refused to {action} {target}: {code}: {message}")
        return S3Unavailable(f"S3 failed to {action} {target}: {code}: {message}")
    return S3Unavailable(f"Could not {action} {target}: {exc}")
