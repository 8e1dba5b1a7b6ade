"""Browser tests of the Model Factory: the Chromium, page and worker fixtures are the Datanets browser suite's."""

from __future__ import annotations

from datanets.tests.browser.conftest import (  # noqa: F401  (fixtures, re-exported for this folder)
    browser,
    new_page,
    page,
    stopped_worker,
)
