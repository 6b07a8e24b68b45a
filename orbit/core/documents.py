"""The documents folder (ORBIT_DOCUMENTS_ROOT): the only place a run's file is read from.

A run names its file by a path relative to the folder (an absolute path inside it is read
as relative). Runs are queued by operators, API tokens and schedules' default metadata,
so the path is untrusted: without a fixed folder, any file the worker can read (a `.env`,
`/etc/shadow`) could be sent to S3 and Veryfi.

The folder is opened, then each component of the path below it with `O_NOFOLLOW`
(directories also with `O_DIRECTORY`) relative to the one before (`openat`), and the file
is checked with `fstat` on the descriptor that is then read. No symlink is ever followed,
`..` is refused outright, and nothing can be swapped between the check and the read.
Every refusal reads "Not an allowed document: <path>", so a caller learns nothing about
files outside the folder: not whether they exist, their type, or their size.

Uploads (the API, the dashboard's form) and the CLI's host files are stored in the folder
under `uploads/<random>/<file name>`, created the same way: no planted symlink can make a
write land outside the folder.
"""

from __future__ import annotations

import os
import re
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from django.conf import settings

from orbit.core.conf import orbit_settings
from orbit.core.exceptions import DocumentTooLarge, NotAllowedDocument

UPLOADS = "uploads"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_CHUNK = 1024 * 1024
_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: opening a FIFO planted in the folder must not wait for a writer.
_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass(frozen=True)
class Document:
    """A file opened inside the documents folder; `path` is relative to the folder."""

    path: str
    name: str
    size: int
    file: IO[bytes]


def documents_root() -> Path:
    """ORBIT_DOCUMENTS_ROOT as an absolute path; a relative setting is taken from BASE_DIR."""
    configured = orbit_settings.documents_root
    base = Path(settings.BASE_DIR)
    root = Path(configured).expanduser() if configured else base / "documents"
    return root if root.is_absolute() else base / root


def safe_name(name: str) -> str:
    """A file name that is safe in a path, an object key and a URL: odd characters become `_`."""
    cleaned = _UNSAFE.sub("_", name).strip("._") or "document"
    return cleaned[:200]


@contextmanager
def open_document(file_path: Any) -> Iterator[Document]:
    """The regular file at `file_path` inside the documents folder, open for reading."""
    parts = _parts(file_path)
    try:
        with _open_folder(parts[:-1]) as folder:
            fd = os.open(parts[-1], _FILE, dir_fd=folder)
    except (OSError, ValueError):
        raise NotAllowedDocument(f"Not an allowed document: {file_path!r}") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise NotAllowedDocument(f"Not an allowed document: {file_path!r}")
    with os.fdopen(fd, "rb") as file:
        yield Document(path="/".join(parts), name=parts[-1], size=info.st_size, file=file)


def store_upload(source: IO[bytes] | Any, name: str, *, max_bytes: int) -> str:
    """Copy an uploaded file into `uploads/<random>/<name>`; its path relative to the folder.

    `source` is a binary file or anything with Django's `chunks()`. Larger than
    `max_bytes`: DocumentTooLarge, and nothing is left behind."""
    folder_name = secrets.token_hex(16)
    file_name = safe_name(Path(str(name)).name)
    root = documents_root()
    root.mkdir(parents=True, exist_ok=True, mode=0o750)
    try:
        with _open_folder([]) as top:
            with suppress(FileExistsError):
                os.mkdir(UPLOADS, 0o750, dir_fd=top)
            uploads = os.open(UPLOADS, _DIRECTORY, dir_fd=top)
    except OSError:
        raise NotAllowedDocument(f"Not an allowed document: {UPLOADS!r}") from None
    try:
        os.mkdir(folder_name, 0o750, dir_fd=uploads)
        folder = os.open(folder_name, _DIRECTORY, dir_fd=uploads)
        try:
            fd = os.open(file_name, _NEW_FILE, 0o640, dir_fd=folder)
            try:
                with os.fdopen(fd, "wb") as target:
                    _copy(source, target, max_bytes)
            except BaseException:
                os.unlink(file_name, dir_fd=folder)
                raise
        except BaseException:
            os.rmdir(folder_name, dir_fd=uploads)
            raise
        finally:
            os.close(folder)
    finally:
        os.close(uploads)
    return f"{UPLOADS}/{folder_name}/{file_name}"


def discard_upload(path: str) -> None:
    """Delete an upload stored by `store_upload` (`uploads/<random>/<name>`) and its folder."""
    parts = _parts(path)
    if len(parts) != 3 or parts[0] != UPLOADS:
        raise NotAllowedDocument(f"Not an allowed document: {path!r}")
    with _open_folder(parts[:1]) as uploads:
        folder = os.open(parts[1], _DIRECTORY, dir_fd=uploads)
        try:
            os.unlink(parts[2], dir_fd=folder)
        finally:
            os.close(folder)
        os.rmdir(parts[1], dir_fd=uploads)


def import_document(host_path: str, *, max_bytes: int) -> str:
    """A file named on the host's command line, as a path relative to the folder: used in
    place when it is already inside, else copied in. The CLI's user reads it with their own
    permissions, so its errors may say plainly what is wrong."""
    inside = _relative_inside_root(os.path.abspath(os.path.expanduser(host_path)))
    if inside is not None:
        with suppress(NotAllowedDocument), open_document(inside) as document:
            return document.path
    path = Path(host_path).expanduser()
    try:
        info = path.stat()
    except FileNotFoundError:
        raise NotAllowedDocument(f"File not found: {host_path}") from None
    except OSError as exc:
        raise NotAllowedDocument(f"Cannot read {host_path}: {exc.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise NotAllowedDocument(f"Not a regular file: {host_path}")
    try:
        with path.open("rb") as source:
            return store_upload(source, path.name, max_bytes=max_bytes)
    except PermissionError:
        raise NotAllowedDocument(f"File is not readable: {host_path}") from None


def _parts(file_path: Any) -> list[str]:
    """The components of `file_path` below the folder; refused if it leads anywhere else."""
    if not isinstance(file_path, str) or not file_path.strip():
        raise NotAllowedDocument(
            "A document path is required: a file in ORBIT_DOCUMENTS_ROOT, as a string "
            f"(got {file_path!r})"
        )
    relative = file_path
    if file_path.startswith("/"):
        relative = _relative_inside_root(file_path)  # type: ignore[assignment]
    parts = [p for p in (relative or "").split("/") if p not in ("", ".")]
    if not parts or ".." in parts or any("\x00" in p for p in parts):
        raise NotAllowedDocument(f"Not an allowed document: {file_path!r}")
    return parts


def _relative_inside_root(absolute: str) -> str | None:
    """`absolute` below the folder (as configured, or with its own symlinks resolved), or None.

    Only the folder's own path is compared here; what follows it is walked component by
    component, so `..` or a symlink after the prefix is still refused."""
    root = documents_root()
    for prefix in dict.fromkeys((str(root), os.path.realpath(root))):
        if absolute.startswith(prefix.rstrip("/") + "/"):
            return absolute[len(prefix.rstrip("/")) + 1 :]
    return None


@contextmanager
def _open_folder(parts: list[str]) -> Iterator[int]:
    """A descriptor for the folder `parts` below the documents folder, never via a symlink.

    The documents folder itself is configuration, so a symlink in its own path is fine."""
    fd = os.open(documents_root(), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in parts:
            inner = os.open(part, _DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = inner
        yield fd
    finally:
        os.close(fd)


def _copy(source: Any, target: IO[bytes], max_bytes: int) -> None:
    chunks = (
        source.chunks(_CHUNK)
        if hasattr(source, "chunks")
        else iter(lambda: source.read(_CHUNK), b"")
    )
    written = 0
    for chunk in chunks:
        written += len(chunk)
        if written > max_bytes:
            raise DocumentTooLarge(
                f"The file is larger than {max_bytes} bytes (ORBIT_MAX_UPLOAD_BYTES)"
            )
        target.write(chunk)
