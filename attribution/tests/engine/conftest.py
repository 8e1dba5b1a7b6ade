"""The engine is Django-free: these tests must also run with `-p no:django`, so the project's Django autouse
fixtures are replaced by no-ops here."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _media_root() -> None:
    return None
