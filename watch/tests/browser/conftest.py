"""Browser tests of the webhook and explorer pages: the Chromium and page fixtures are the Datanets browser suite's."""

from __future__ import annotations

from datanets.tests.browser.conftest import (  # noqa: F401  (fixtures, re-exported for this folder)
    browser,
    new_page,
    page,
)
