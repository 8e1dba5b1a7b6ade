"""Pre-built download zips go when no version points at their artifact any more, or when nobody downloaded them
for MODEL_ZIP_MAX_AGE_HOURS; a live, recently downloaded one stays (issue 12, the model download)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from models_factory import artifacts


def artifact(tmp_path: Path, name: str) -> str:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "config.json").write_text('{"kind": "head"}')
    return str(folder)


def test_zips_of_gone_or_idle_versions_are_deleted(settings, tmp_path: Path) -> None:
    settings.VAR_DIR = tmp_path / "var"
    settings.MODEL_ZIP_MAX_AGE_HOURS = 24
    live, idle, gone = (artifact(tmp_path, n) for n in ("live", "idle", "gone"))
    zips = {
        name: artifacts.artifact_zip(location) for name, location in (("live", live), ("idle", idle), ("gone", gone))
    }
    assert all(path is not None and path.is_file() for path in zips.values())
    two_days_ago = time.time() - 48 * 3600
    os.utime(zips["idle"], (two_days_ago, two_days_ago))
    os.utime(zips["live"], (two_days_ago, two_days_ago))
    artifacts.artifact_zip(live)  # downloaded again just now: its clock restarts
    stale_part = artifacts.zips_dir() / "abc.part"
    stale_part.write_bytes(b"half a zip")
    os.utime(stale_part, (two_days_ago, two_days_ago))
    # The versions that exist point at live and idle; gone's version was deleted.
    assert artifacts.artifact_zips_expire(live_locations=[live, idle], max_age_s=24 * 3600) == 3
    assert zips["live"].is_file() and not zips["idle"].exists() and not zips["gone"].exists()
    assert not stale_part.exists()
    assert artifacts.artifact_zip(idle).is_file()  # the next download builds it again
