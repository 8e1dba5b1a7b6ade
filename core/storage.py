"""Content-addressed blobs in the default storage (local folder, or S3 through django-storages)."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.core.files import File
from django.core.files.storage import default_storage

CHUNK = 1024 * 1024


def sha256_file(path: Path | str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def blob_name_for(sha256: str, suffix: str = "") -> str:
    return f"blobs/{sha256[:2]}/{sha256[2:4]}/{sha256}{suffix}"


def blob_put_file(path: Path | str, *, sha256: str | None = None, suffix: str = "") -> tuple[str, str]:
    """Store a local file under its SHA-256. Returns (blob name, sha256). Storing the same bytes twice is a no-op."""
    digest = sha256 or sha256_file(path)
    name = blob_name_for(digest, suffix)
    if not default_storage.exists(name):
        with open(path, "rb") as fh:
            saved = default_storage.save(name, File(fh))
        if saved != name:  # a concurrent writer stored the same content first; ours is a redundant copy
            default_storage.delete(saved)
    return name, digest


def blob_put_bytes(data: bytes, *, suffix: str = "") -> tuple[str, str]:
    with tempfile.NamedTemporaryFile(delete=False) as tmp:
        tmp.write(data)
    try:
        return blob_put_file(tmp.name, suffix=suffix)
    finally:
        os.unlink(tmp.name)


@contextmanager
def blob_local_path(name: str) -> Iterator[Path]:
    """A local path to read the blob from: the file itself on local storage, a streamed temp copy on S3."""
    try:
        local = Path(default_storage.path(name))
    except NotImplementedError:
        local = None
    if local is not None:
        yield local
        return
    suffix = "".join(Path(name).suffixes)
    with tempfile.NamedTemporaryFile(suffix=suffix) as tmp:
        with default_storage.open(name, "rb") as src:
            shutil.copyfileobj(src, tmp, CHUNK)
        tmp.flush()
        yield Path(tmp.name)
