"""Where model artifacts live: the worker's local folder, or the default storage (S3 / MinIO) when it is remote.

Training writes to a local folder; on registration a remote storage gets a copy under ``models/<run id>/`` and the
version's location becomes ``storage://models/<run id>/``. Serving and attribution read through
``artifact_local_path``, which downloads a remote artifact once into ``VAR_DIR/model-cache``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import time
import zipfile
from pathlib import Path

from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage

PREFIX = "storage://"


def storage_is_local() -> bool:
    from django.core.files.storage import FileSystemStorage, storages

    return isinstance(storages["default"], FileSystemStorage)


def artifact_publish(local_dir: Path, *, name: str) -> str:
    """Return the location to record for a finished artifact folder."""
    if storage_is_local():
        return str(local_dir)
    base = f"models/{name}/"
    for root, _, files in os.walk(local_dir):
        for filename in files:
            path = Path(root) / filename
            key = base + path.relative_to(local_dir).as_posix()
            if default_storage.exists(key):
                default_storage.delete(key)
            with open(path, "rb") as fh:
                default_storage.save(key, File(fh))
    (Path(local_dir) / ".published").write_text(base)
    return PREFIX + base


def _list_files(prefix: str) -> list[str]:
    dirs, files = default_storage.listdir(prefix)
    out = [prefix + f for f in files]
    for d in dirs:
        out.extend(_list_files(f"{prefix}{d}/"))
    return out


def artifact_local_path(location: str) -> Path:
    """A local folder holding the artifact (downloaded once from remote storage)."""
    if not location.startswith(PREFIX):
        return Path(location)
    prefix = location[len(PREFIX) :]
    cache = Path(settings.VAR_DIR) / "model-cache" / prefix.strip("/").replace("/", "_")
    if (cache / ".complete").exists():
        return cache
    cache.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=cache.parent))
    for key in _list_files(prefix):
        target = scratch / key[len(prefix) :]
        target.parent.mkdir(parents=True, exist_ok=True)
        with default_storage.open(key, "rb") as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst, 1024 * 1024)
    (scratch / ".complete").write_text(location)
    if cache.exists():
        shutil.rmtree(scratch, ignore_errors=True)  # another process finished the same download first
    else:
        scratch.rename(cache)
    return cache


MARKERS = {".published", ".complete"}


def artifact_zip(location: str) -> Path | None:
    """A zip of the artifact, built once on disk (next to the model cache) and then served as a file, so a download
    streams from disk instead of holding the whole archive in memory. None when the artifact is not on this server."""
    folder = artifact_local_path(location)
    if not folder.is_dir():
        return None
    zips = zips_dir()
    target = zip_path(location)
    if target.is_file():
        os.utime(target)  # the expiry below counts from the last download, not from when it was built
        return target
    zips.mkdir(parents=True, exist_ok=True)
    fd, scratch = tempfile.mkstemp(dir=zips, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as fh, zipfile.ZipFile(fh, "w", zipfile.ZIP_DEFLATED) as zf:
            for root, _, files in os.walk(folder):
                for name in sorted(files):
                    path = Path(root) / name
                    if name not in MARKERS:
                        zf.write(path, path.relative_to(folder))
        os.replace(scratch, target)  # atomic: a parallel download sees the whole zip or builds its own
    finally:
        if os.path.exists(scratch):
            os.unlink(scratch)
    return target


def zips_dir() -> Path:
    return Path(settings.VAR_DIR) / "model-zips"


def zip_path(location: str) -> Path:
    return zips_dir() / f"{hashlib.sha256(location.encode()).hexdigest()[:32]}.zip"


def artifact_zips_expire(*, live_locations: list[str], max_age_s: float, now: float | None = None) -> int:
    """Delete pre-built zips of artifacts no version points at any more (a version deleted, a location replaced),
    zips not downloaded for ``max_age_s`` (rebuilt on the next download), and half-written ``.part`` files of a
    build that died. Returns how many files went."""
    folder = zips_dir()
    if not folder.is_dir():
        return 0
    now = time.time() if now is None else now
    live = {zip_path(location).name for location in live_locations}
    removed = 0
    for path in folder.iterdir():
        age = now - path.stat().st_mtime
        stale = path.suffix == ".part" and age > 3600
        if path.suffix == ".zip":
            stale = path.name not in live or age > max_age_s
        if stale:
            path.unlink(missing_ok=True)
            removed += 1
    return removed
