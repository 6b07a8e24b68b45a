"""The local file a run processes, checked before anything leaves the machine."""

from __future__ import annotations

import mimetypes
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.exceptions import InvalidDocument

#: Veryfi rejects smaller files as corrupted (docs/DOCUMENTS.md).
MIN_DOCUMENT_BYTES = 250
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class LocalDocument:
    path: Path
    name: str
    size: int
    content_type: str


def content_type_for(name: str) -> str:
    """The MIME type from the file name; `application/octet-stream` when unknown."""
    return mimetypes.guess_type(name, strict=False)[0] or "application/octet-stream"


def safe_name(name: str) -> str:
    """A file name that is safe in an object key and a URL: unusual characters become `_`."""
    cleaned = _UNSAFE.sub("_", name).strip("._") or "document"
    return cleaned[:200]


def local_document(file_path: Any, *, max_bytes: int) -> LocalDocument:
    """The file at `file_path` if it is a readable regular file of a size Veryfi accepts."""
    if not isinstance(file_path, str) or not file_path.strip():
        raise InvalidDocument(
            "metadata.filePath is required: the path of the document to process, "
            f"as a string (got {file_path!r})"
        )
    path = Path(file_path).expanduser()
    try:
        info = path.stat()
    except FileNotFoundError:
        raise InvalidDocument(f"File not found: {file_path}") from None
    except OSError as exc:
        raise InvalidDocument(f"Cannot read {file_path}: {exc.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise InvalidDocument(f"Not a regular file: {file_path}")
    if not os.access(path, os.R_OK):
        raise InvalidDocument(f"File is not readable: {file_path}")
    if info.st_size > max_bytes:
        raise InvalidDocument(
            f"File is too large: {file_path} is {info.st_size} bytes; the limit is "
            f"{max_bytes} bytes (ORBIT_MAX_UPLOAD_BYTES)"
        )
    if info.st_size < MIN_DOCUMENT_BYTES:
        raise InvalidDocument(
            f"File is too small to be a document: {file_path} is {info.st_size} bytes; "
            f"Veryfi needs at least {MIN_DOCUMENT_BYTES} bytes"
        )
    return LocalDocument(
        path=path, name=path.name, size=info.st_size, content_type=content_type_for(path.name)
    )


def run_metadata(file_path: str, *, user_id: int | None = None, max_bytes: int) -> dict[str, Any]:
    """A document-processing run's input for a local file, checked now rather than by a
    worker later: the absolute path (workers may run elsewhere) and an existing user."""
    document = local_document(file_path, max_bytes=max_bytes)
    metadata: dict[str, Any] = {"filePath": str(document.path.resolve())}
    if user_id is not None:
        from django.contrib.auth import get_user_model

        if not get_user_model().objects.filter(pk=user_id).exists():
            raise InvalidDocument(f"No user with id {user_id}")
        metadata["userId"] = user_id
    return metadata
