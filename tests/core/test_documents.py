"""The documents folder (orbit/core/documents.py): the only place a run's document is read from.

Every refusal reads the same, so a caller learns nothing about files it may not read:
not whether a path exists, what kind of file it is, or how large.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from orbit.core.documents import (
    DocumentTooLarge,
    NotAllowedDocument,
    documents_root,
    import_document,
    open_document,
    store_upload,
)

LIMIT = 5000


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A secret beside the documents folder, readable by this process."""
    secret = tmp_path / "secret.env"
    secret.write_text("SECRET_KEY=do-not-upload\n")
    return secret


def _refusal(path: object) -> str:
    return f"Not an allowed document: {path!r}"


def test_a_relative_path_inside_the_folder_is_opened(documents_root: Path) -> None:
    (documents_root / "inbox").mkdir()
    (documents_root / "inbox" / "a.pdf").write_bytes(b"%PDF-1.4 inside")
    with open_document("inbox/a.pdf") as document:
        assert (document.name, document.size, document.path) == ("a.pdf", 15, "inbox/a.pdf")
        assert document.file.read() == b"%PDF-1.4 inside"


def test_an_absolute_path_inside_the_folder_is_read_as_relative(documents_root: Path) -> None:
    (documents_root / "a.pdf").write_bytes(b"%PDF")
    with open_document(str(documents_root / "a.pdf")) as document:
        assert document.path == "a.pdf"


@pytest.mark.parametrize(
    "make",
    [
        # a system file, by its absolute path
        lambda root, outside: "/etc/passwd",
        # a file beside the folder, by its absolute path
        lambda root, outside: str(outside),
        # ../ out of the folder
        lambda root, outside: f"../{outside.name}",
        # ../ hidden in the middle of the path
        lambda root, outside: f"inbox/../../{outside.name}",
        # ../ after the folder's own absolute path
        lambda root, outside: f"{root}/../{outside.name}",
        # a symlink inside the folder to a file outside it
        lambda root, outside: _symlink(root / "link.pdf", outside),
        # a symlink inside the folder to a system file
        lambda root, outside: _symlink(root / "passwd.pdf", Path("/etc/passwd")),
        # a directory symlink inside the folder, leading out of it
        lambda root, outside: _symlink(root / "up", outside.parent) + f"/{outside.name}",
        # a symlink even to a file inside the folder: links are never followed
        lambda root, outside: _symlink(root / "alias.pdf", _write(root / "real.pdf")),
        # a file that does not exist
        lambda root, outside: "missing.pdf",
        # a directory
        lambda root, outside: _mkdir(root / "inbox"),
        # the folder itself
        lambda root, outside: str(root),
        # a FIFO: opening it must not hang
        lambda root, outside: _fifo(root / "pipe.pdf"),
        # a NUL byte
        lambda root, outside: "a\x00.pdf",
        # a home-directory shortcut, which is not expanded
        lambda root, outside: "~/.ssh/id_rsa",
    ],
)
def test_everything_else_is_refused_with_one_message(
    documents_root: Path, outside: Path, make: object
) -> None:
    path = make(documents_root, outside)  # type: ignore[operator]
    with pytest.raises(NotAllowedDocument) as caught, open_document(path):
        pass
    assert str(caught.value) == _refusal(path)


@pytest.mark.parametrize("value", [None, "", "   ", 42, ["a.pdf"]])
def test_a_missing_path_says_what_is_needed(documents_root: Path, value: object) -> None:
    with pytest.raises(NotAllowedDocument) as caught, open_document(value):
        pass
    assert str(caught.value) == (
        f"A document path is required: a file in ORBIT_DOCUMENTS_ROOT, as a string (got {value!r})"
    )


def test_the_folder_defaults_to_documents_in_the_project(settings) -> None:
    settings.ORBIT_DOCUMENTS_ROOT = ""
    assert documents_root() == Path(settings.BASE_DIR) / "documents"


def test_a_relative_folder_is_taken_from_the_project_not_the_working_directory(
    settings, tmp_path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings.ORBIT_DOCUMENTS_ROOT = "var/docs"
    assert documents_root() == Path(settings.BASE_DIR) / "var" / "docs"


def test_an_upload_gets_a_unique_path_under_uploads(documents_root: Path) -> None:
    first = store_upload(io.BytesIO(b"%PDF one"), "../../My receipt.pdf", max_bytes=LIMIT)
    second = store_upload(io.BytesIO(b"%PDF two"), "../../My receipt.pdf", max_bytes=LIMIT)
    assert first != second
    for stored, body in ((first, b"%PDF one"), (second, b"%PDF two")):
        assert stored.startswith("uploads/") and stored.endswith("/My_receipt.pdf")
        assert (documents_root / stored).read_bytes() == body
        with open_document(stored) as document:
            assert document.file.read() == body


def test_an_upload_over_the_limit_is_refused_and_leaves_nothing(documents_root: Path) -> None:
    with pytest.raises(DocumentTooLarge) as caught:
        store_upload(io.BytesIO(b"x" * (LIMIT + 1)), "big.pdf", max_bytes=LIMIT)
    assert str(caught.value) == (f"The file is larger than {LIMIT} bytes (ORBIT_MAX_UPLOAD_BYTES)")
    assert [p for p in documents_root.rglob("*") if p.is_file()] == []


def test_an_upload_does_not_follow_a_planted_symlink(documents_root: Path, outside: Path) -> None:
    # Whoever can write in the folder must not make uploads land outside it.
    os.symlink(outside.parent, documents_root / "uploads")
    with pytest.raises(NotAllowedDocument):
        store_upload(io.BytesIO(b"%PDF"), "a.pdf", max_bytes=LIMIT)
    assert outside.read_text() == "SECRET_KEY=do-not-upload\n"
    assert sorted(p.name for p in outside.parent.iterdir()) == ["documents", "secret.env"]


def test_a_host_file_is_copied_into_the_folder(documents_root: Path, outside: Path) -> None:
    stored = import_document(str(outside), max_bytes=LIMIT)
    assert stored.startswith("uploads/") and stored.endswith("/secret.env")
    assert (documents_root / stored).read_bytes() == outside.read_bytes()


def test_a_host_file_already_in_the_folder_is_used_where_it_is(documents_root: Path) -> None:
    _write(documents_root / "in-place.pdf")
    assert import_document(str(documents_root / "in-place.pdf"), max_bytes=LIMIT) == "in-place.pdf"


def _symlink(link: Path, target: Path) -> str:
    link.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target, link)
    return link.name


def _write(path: Path) -> Path:
    path.write_bytes(b"%PDF-1.4 " + b"x" * 300)
    return path


def _mkdir(path: Path) -> str:
    path.mkdir()
    return path.name


def _fifo(path: Path) -> str:
    os.mkfifo(path)
    return path.name
