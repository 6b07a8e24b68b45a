from __future__ import annotations

import pytest

from orbit.core.exceptions import NotAllowedDocument
from services.documents import content_type_for, local_document, run_metadata, safe_name
from services.exceptions import InvalidDocument

LIMIT = 2000


def test_a_file_in_the_documents_folder_of_an_accepted_size_is_opened(receipt):
    with local_document("receipt.pdf", max_bytes=LIMIT) as document:
        assert (document.path, document.name, document.size, document.content_type) == (
            "receipt.pdf",
            "receipt.pdf",
            1161,
            "application/pdf",
        )
        assert document.file.read() == receipt.read_bytes()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        # one byte over ORBIT_MAX_UPLOAD_BYTES
        (
            lambda d: _write(d / "big.pdf", LIMIT + 1),
            "File is too large: big.pdf is 2001 bytes; the limit is 2000 bytes (ORBIT_MAX_UPLOAD_BYTES)",
        ),
        # under Veryfi's minimum
        (
            lambda d: _write(d / "tiny.png", 249),
            "File is too small to be a document: tiny.png is 249 bytes; Veryfi needs at least 250 bytes",
        ),
    ],
)
def test_documents_of_a_size_veryfi_refuses_are_refused_with_a_clear_message(
    documents_root, make, message
):
    with (
        pytest.raises(InvalidDocument) as caught,
        local_document(make(documents_root), max_bytes=LIMIT),
    ):
        pass
    assert str(caught.value) == message


@pytest.mark.parametrize(
    ("make", "message"),
    [
        # nothing at that path
        (lambda d: "gone.pdf", "Not an allowed document: 'gone.pdf'"),
        # a directory is not a document
        (lambda d: str(d), "Not an allowed document: '{d}'"),
        # outside the documents folder, whatever its size
        (
            lambda d: _write(d.parent / "big.pdf", LIMIT + 1),
            "Not an allowed document: '{p}/big.pdf'",
        ),
        # missing from the metadata altogether
        (
            lambda d: None,
            "A document path is required: a file in ORBIT_DOCUMENTS_ROOT, as a string (got None)",
        ),
    ],
)
def test_paths_that_are_not_documents_are_refused(documents_root, make, message):
    with (
        pytest.raises(NotAllowedDocument) as caught,
        local_document(make(documents_root), max_bytes=LIMIT),
    ):
        pass
    assert str(caught.value) == message.format(d=documents_root, p=documents_root.parent)


def test_exactly_the_limit_is_accepted(documents_root):
    with local_document(_write(documents_root / "edge.pdf", LIMIT), max_bytes=LIMIT) as document:
        assert document.size == LIMIT


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("receipt.pdf", "application/pdf"),
        ("scan.JPG", "image/jpeg"),
        ("photo.png", "image/png"),
        ("mystery.xyz123", "application/octet-stream"),  # unknown: the generic type
        ("no-extension", "application/octet-stream"),
    ],
)
def test_content_type_comes_from_the_file_name(name, expected):
    assert content_type_for(name) == expected


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("receipt.pdf", "receipt.pdf"),
        ("my receipt (1).pdf", "my_receipt_1_.pdf"),
        ("../../etc/passwd", "etc_passwd"),
        ("...", "document"),
        ("reçu-été.png", "re_u-_t_.png"),
    ],
)
def test_safe_names_keep_keys_and_urls_plain(name, expected):
    assert safe_name(name) == expected


@pytest.mark.django_db
def test_run_metadata_copies_a_host_file_into_the_documents_folder(
    documents_root, tmp_path, monkeypatch
):
    host = tmp_path / "scan.pdf"
    _write(host, 500)
    monkeypatch.chdir(tmp_path)
    metadata = run_metadata("scan.pdf", max_bytes=LIMIT)
    assert metadata["filePath"].startswith("uploads/")
    assert (documents_root / metadata["filePath"]).read_bytes() == host.read_bytes()


@pytest.mark.django_db
def test_run_metadata_uses_a_file_already_in_the_folder_in_place(receipt, monkeypatch):
    monkeypatch.chdir(receipt.parent)
    assert run_metadata("receipt.pdf", max_bytes=LIMIT) == {"filePath": "receipt.pdf"}


@pytest.mark.django_db
def test_run_metadata_leaves_no_copy_of_a_file_it_refuses(documents_root, tmp_path):
    tiny = tmp_path / "tiny.pdf"
    _write(tiny, 100)
    with pytest.raises(InvalidDocument, match="too small"):
        run_metadata(str(tiny), max_bytes=LIMIT)
    assert [p for p in documents_root.rglob("*") if p.is_file()] == []


@pytest.mark.django_db
def test_run_metadata_refuses_an_unknown_user(receipt):
    with pytest.raises(InvalidDocument, match=r"^No user with id 999$"):
        run_metadata(str(receipt), user_id=999, max_bytes=LIMIT)


@pytest.mark.django_db
def test_run_metadata_keeps_an_existing_user(receipt, django_user_model):
    user = django_user_model.objects.create(username="ada")
    assert run_metadata(str(receipt), user_id=user.pk, max_bytes=LIMIT)["userId"] == user.pk


def _write(path, size):
    path.write_bytes(b"%PDF" + b"x" * (size - 4))
    return str(path)
