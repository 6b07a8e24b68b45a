from __future__ import annotations

import os

import pytest

from services.documents import content_type_for, local_document, run_metadata, safe_name
from services.exceptions import InvalidDocument

LIMIT = 2000


def test_a_readable_file_of_an_accepted_size_is_described(receipt):
    document = local_document(str(receipt), max_bytes=LIMIT)
    assert (document.name, document.size, document.content_type) == (
        "receipt.pdf",
        1161,
        "application/pdf",
    )


@pytest.mark.parametrize(
    ("make", "message"),
    [
        # nothing at that path
        (lambda d: str(d / "gone.pdf"), "File not found: {d}/gone.pdf"),
        # a directory is not a document
        (lambda d: str(d), "Not a regular file: {d}"),
        # one byte over ORBIT_MAX_UPLOAD_BYTES
        (
            lambda d: _write(d / "big.pdf", LIMIT + 1),
            "File is too large: {d}/big.pdf is 2001 bytes; the limit is 2000 bytes (ORBIT_MAX_UPLOAD_BYTES)",
        ),
        # under Veryfi's minimum
        (
            lambda d: _write(d / "tiny.png", 249),
            "File is too small to be a document: {d}/tiny.png is 249 bytes; Veryfi needs at least 250 bytes",
        ),
        # missing from the metadata altogether
        (
            lambda d: None,
            "metadata.filePath is required: the path of the document to process, as a string (got None)",
        ),
        # not a string
        (
            lambda d: 42,
            "metadata.filePath is required: the path of the document to process, as a string (got 42)",
        ),
    ],
)
def test_unusable_files_are_refused_with_a_clear_message(tmp_path, make, message):
    with pytest.raises(InvalidDocument) as caught:
        local_document(make(tmp_path), max_bytes=LIMIT)
    assert str(caught.value) == message.format(d=tmp_path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file")
def test_an_unreadable_file_is_refused(receipt):
    receipt.chmod(0)
    with pytest.raises(InvalidDocument, match="File is not readable"):
        local_document(str(receipt), max_bytes=LIMIT)


def test_exactly_the_limit_is_accepted(tmp_path):
    assert local_document(_write(tmp_path / "edge.pdf", LIMIT), max_bytes=LIMIT).size == LIMIT


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
def test_run_metadata_uses_the_absolute_path(receipt, monkeypatch):
    monkeypatch.chdir(receipt.parent)
    assert run_metadata("receipt.pdf", max_bytes=LIMIT) == {"filePath": str(receipt)}


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
