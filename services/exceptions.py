"""Errors from the outside systems the document pipeline talks to (S3, Veryfi).

A step that raises a `PermanentFailure` fails at once, without further attempts: retrying
cannot fix a missing variable, a missing bucket or a document Veryfi refuses. Anything
else is a failed attempt that the step's retry policy tries again.
"""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

from orbit.core.exceptions import OrbitError, PermanentFailure


class NotConfigured(PermanentFailure, ImproperlyConfigured):
    """A setting the document pipeline needs is not set."""


class InvalidDocument(PermanentFailure):
    """The document to process is missing, unreadable, empty or too large."""


class S3Refused(PermanentFailure):
    """S3 refused the request in a way retrying cannot fix (missing bucket, access denied)."""


class S3Unavailable(OrbitError):
    """S3 could not be reached or failed, even after boto3's own retries."""


class VeryfiRejected(PermanentFailure):
    """Veryfi refused the request (a 4xx other than 409 and 429); retrying cannot help."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


class VeryfiUnavailable(OrbitError):
    """Veryfi is rate limiting, overloaded, failing or unreachable: worth retrying."""

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class VeryfiBadResponse(OrbitError):
    """Veryfi answered with something that is not the document it promised.

    Not retried inside the attempt (Veryfi may have processed the document already);
    the step's own retry policy decides whether to try again.
    """
