import pytest


@pytest.fixture(autouse=True)
def _media_root() -> None:
    """Shadows the project-wide Django settings fixture: the ingest core needs no Django, and its tests run with
    `-p no:django`."""
