"""The document a run processes, read from the documents folder (orbit/core/documents.py) and
checked against Veryfi's limits before anything leaves the machine."""

from __future__ import annotations

import mimetypes
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, Any

from orbit.core.documents import UPLOADS, discard_upload, import_document, open_document, safe_name
from services.exceptions import InvalidDocument

__all__ = ["LocalDocument", "content_type_for", "local_document", "run_metadata", "safe_name"]

#: Veryfi rejects smaller files as corrupted (docs/DOCUMENTS.md).
MIN_DOCUMENT_BYTES = 250


@dataclass(frozen=True)
class LocalDocument:
    path: str  # relative to ORBIT_DOCUMENTS_ROOT
    name: str
    size: int
    content_type: str
    file: IO[bytes]


def content_type_for(name: str) -> str:
    """The MIME type from the file name; `application/octet-stream` when unknown."""
    return mimetypes.guess_type(name, strict=False)[0] or "application/octet-stream"


@contextmanager
def local_document(file_path: Any, *, max_bytes: int) -> Iterator[LocalDocument]:
    """The file at `file_path` in the documents folder, open, if its size suits Veryfi.

    A path outside the folder, a symlink, a missing or special file: NotAllowedDocument,
    with one message for all. Sizes are told: the file is one the caller may process."""
    with open_document(file_path) as document:
        if document.size > max_bytes:
            raise InvalidDocument(
                f"File is too large: {document.path} is {document.size} bytes; the limit is "
                f"{max_bytes} bytes (ORBIT_MAX_UPLOAD_BYTES)"
            )
        if document.size < MIN_DOCUMENT_BYTES:
            raise InvalidDocument(
                f"File is too small to be a document: {document.path} is {document.size} "
                f"bytes; Veryfi needs at least {MIN_DOCUMENT_BYTES} bytes"
            )
        yield LocalDocument(
            path=document.path,
            name=document.name,
            size=document.size,
            content_type=content_type_for(document.name),
            file=document.file,
        )


def run_metadata(host_path: str, *, user_id: int | None = None, max_bytes: int) -> dict[str, Any]:
    """A document-processing run's input for a file on this host, checked now rather than
    by a worker later: the file copied into the documents folder (unless it is there
    already), its path relative to the folder, and an existing user."""
    metadata: dict[str, Any] = {}
    if user_id is not None:
        from django.contrib.auth import get_user_model

        if not get_user_model().objects.filter(pk=user_id).exists():
            raise InvalidDocument(f"No user with id {user_id}")
        metadata["userId"] = user_id
    path = import_document(host_path, max_bytes=max_bytes)
    try:
        with local_document(path, max_bytes=max_bytes):
            pass
    except InvalidDocument:
        if path.startswith(f"{UPLOADS}/"):
            discard_upload(path)
        raise
    return {"filePath": path, **metadata}
