"""Browser tests over the whole demo: the Chromium and page fixtures are the Datanets browser suite's."""

from __future__ import annotations

from pathlib import Path

import pytest

from datanets.tests.browser.conftest import (  # noqa: F401  (fixtures, re-exported for this folder)
    _skip_reason,
    browser,
    new_page,
    page,
)

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Skip at collection time so a machine without Chromium does not load the demo for nothing.
    reason = _skip_reason()
    if reason is None:
        return
    for item in items:
        if HERE in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.skip(reason=reason))
