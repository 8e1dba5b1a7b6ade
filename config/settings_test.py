"""Settings for the test suite: the embedded defaults with their own broker folder and test database file.

A session of ``make run`` and a test run can share a machine without stealing each other's tasks.
"""

from __future__ import annotations

import os

os.environ.setdefault("DATANETS_DEV", "1")  # the public dev key and plain-HTTP cookies, as `make test` runs
os.environ.setdefault(
    "DATANETS_BROKER_DIR", os.path.join(os.path.dirname(os.path.dirname(__file__)), "var", "test-broker")
)

from config.settings import *  # noqa: E402,F403
from config.settings import BROKER_DIR, REDIS_URL, celery_broker_settings  # noqa: E402

CELERY_BROKER_URL, CELERY_BROKER_TRANSPORT_OPTIONS = celery_broker_settings(REDIS_URL, BROKER_DIR)
if REDIS_URL:
    # Tests kill workers on purpose: get their unacked tasks back in seconds, not hours.
    CELERY_BROKER_TRANSPORT_OPTIONS.update({"visibility_timeout": 30, "unacked_restore_interval": 2.0})
# A file cache even when REDIS_URL is set: shared with the worker process like production's, and clearing it between
# tests (conftest) must never flush the Redis database the broker uses.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
        "LOCATION": str(VAR_DIR / "test-cache"),  # noqa: F405
    }
}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES["staticfiles"] = {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}  # noqa: F405
MEDIA_ROOT = VAR_DIR / "test-media"  # noqa: F405
