"""Django settings, read from the environment with embedded defaults that need no server.

Embedded (``make run``): SQLite in ``var/``, Celery on kombu's filesystem transport in ``var/broker``, files in
``var/media``. Full stack: ``DATABASE_URL`` (PostgreSQL), ``REDIS_URL`` (Celery broker), ``S3_BUCKET`` (files).
README.md lists every variable.
"""

from __future__ import annotations

from pathlib import Path

from config.env import (
    ImproperEnv,
    database_from_url,
    env_bool,
    env_float,
    env_int,
    env_list,
    env_str,
    sqlite_database,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("DATANETS_VAR_DIR", str(BASE_DIR / "var"))).resolve()

DEBUG = env_bool("DEBUG", False)
# The explicit development flag: `make run`, `make test` and CI set it. It allows the public development secret key,
# cookies over plain HTTP and the chain's public development keys. A server others can reach never sets it.
DEV = env_bool("DATANETS_DEV", False)
_INSECURE_DEV_KEY = "dev-only-insecure-key-change-me-with-SECRET_KEY"
SECRET_KEY = env_str("SECRET_KEY", "")
if not SECRET_KEY or SECRET_KEY == _INSECURE_DEV_KEY:
    if not (DEV or DEBUG):
        raise ImproperEnv(
            "SECRET_KEY is not set. Set it to a long random value (for example the output of "
            "`python -c 'import secrets; print(secrets.token_urlsafe(50))'`), or set DATANETS_DEV=1 to run on the "
            "public development key on your own machine only."
        )
    SECRET_KEY = _INSECURE_DEV_KEY
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
SITE_URL = env_str("SITE_URL", "http://127.0.0.1:8000")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "core",
    "accounts",
    "datanets",
    "models_factory",
    "attribution",
    "settlement",
    "watch",
    "demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "config.middleware.ExplainEmptyErrorsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
AUTH_USER_MODEL = "accounts.User"
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "datanets:list"
LOGOUT_REDIRECT_URL = "datanets:list"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "datanets.context.datanet_roles",
            ],
        },
    },
]

_database_url = env_str("DATABASE_URL", "")
DATABASES = {
    "default": database_from_url(_database_url) if _database_url else sqlite_database(str(VAR_DIR / "datanets.sqlite3"))
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3") and not DATABASES["default"]["TEST"]["NAME"]:
    # A file, not :memory:, so that a real worker process can see the test database.
    DATABASES["default"]["TEST"]["NAME"] = str(VAR_DIR / "test.sqlite3")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 8}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # whitenoise warns on every request when it is missing
MEDIA_URL = "media/"
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(VAR_DIR / "media")))

S3_BUCKET = env_str("S3_BUCKET", "")
STORAGES: dict[str, dict[str, object]] = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
if S3_BUCKET:
    STORAGES["default"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": S3_BUCKET,
            "endpoint_url": env_str("S3_ENDPOINT_URL", "") or None,
            "access_key": env_str("S3_ACCESS_KEY_ID", ""),
            "secret_key": env_str("S3_SECRET_ACCESS_KEY", ""),
            "file_overwrite": False,
        },
    }
WHITENOISE_USE_FINDERS = True

# --- Cache: shared by every web and worker process, so throttles and lockouts hold across them -------------------
CACHE_DIR = Path(env_str("DATANETS_CACHE_DIR", str(VAR_DIR / "cache")))
if env_str("REDIS_URL", ""):
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": env_str("CACHE_URL", "") or env_str("REDIS_URL", ""),
            "KEY_PREFIX": "datanets",
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache", "LOCATION": str(CACHE_DIR)}}

# --- Abuse limits (per account or per address; README.md lists them) -------------------------------------------
LOGIN_FAILURES_PER_USER = env_int("LOGIN_FAILURES_PER_USER", 5, minimum=1)
LOGIN_FAILURES_PER_IP = env_int("LOGIN_FAILURES_PER_IP", 30, minimum=1)
LOGIN_LOCKOUT_SECONDS = env_int("LOGIN_LOCKOUT_SECONDS", 15 * 60, minimum=60)
SIGNUPS_PER_HOUR_PER_IP = env_int("SIGNUPS_PER_HOUR_PER_IP", 20, minimum=1)

# --- REST API -------------------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticatedOrReadOnly"],
    "DEFAULT_PAGINATION_CLASS": "core.pagination.Pages",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "core.errors.api_exception_handler",
    "DEFAULT_FILTER_BACKENDS": [],
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.AnonRateThrottle",
        "rest_framework.throttling.UserRateThrottle",
        "core.throttles.WriteScopedRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env_str("THROTTLE_ANON", "120/min"),
        "user": env_str("THROTTLE_USER", "1200/min"),
        # Scopes for actions that cost the platform or mint credentials (views set throttle_scope).
        "tokens": env_str("THROTTLE_TOKENS", "20/hour"),
        "wallet": env_str("THROTTLE_WALLET", "20/hour"),
        "training": env_str("THROTTLE_TRAINING", "30/hour"),
        "exports": env_str("THROTTLE_EXPORTS", "30/hour"),
        # A receipt challenge rebuilds the model's attribution index: seconds to minutes of worker time.
        "challenges": env_str("THROTTLE_CHALLENGES", "10/hour"),
    },
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Datanets API",
    "DESCRIPTION": "Community datasets, specialized models, Proof of Attribution and on-chain rewards.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Several models name their choices "Status": give each enum its model's name, not a hash.
    "ENUM_NAME_OVERRIDES": {
        "UploadStatusEnum": "datanets.models.Upload.Status",
        "ContributionStatusEnum": "datanets.models.Contribution.Status",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "core.openapi.add_error_responses",
    ],
}

# --- Celery ---------------------------------------------------------------------------------------------------
REDIS_URL = env_str("REDIS_URL", "")
BROKER_DIR = Path(env_str("DATANETS_BROKER_DIR", str(VAR_DIR / "broker"))).resolve()


def celery_broker_settings(redis_url: str, broker_dir: Path) -> tuple[str, dict[str, object]]:
    if redis_url:
        return redis_url, {
            # A killed worker's unacked task comes back after this; keep it above the longest task.
            "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 6 * 3600, minimum=1),
            "unacked_restore_interval": env_float("CELERY_UNACKED_RESTORE_INTERVAL", 60.0),
        }
    folders = {name: broker_dir / name for name in ("queue", "processed", "control")}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    return "filesystem://", {
        "data_folder_in": str(folders["queue"]),
        "data_folder_out": str(folders["queue"]),
        "processed_folder": str(folders["processed"]),
        "control_folder": str(folders["control"]),
        "store_processed": False,
        "polling_interval": 0.1,
    }


CELERY_BROKER_URL, CELERY_BROKER_TRANSPORT_OPTIONS = celery_broker_settings(REDIS_URL, BROKER_DIR)
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_SERIALIZER = "json"
CELERY_TASK_IGNORE_RESULT = True  # Job rows are the record of every task, not a result backend.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 6 * 3600, minimum=1)
CELERY_TASK_SOFT_TIME_LIMIT = CELERY_TASK_TIME_LIMIT - 60
# Queues by how long their tasks run, so that a training run or an index build never holds up a 3-record paste:
# `default` (short: ingestion, receipts' accrual, upkeep), `long` (index builds, epoch valuation, exports,
# settlement) and `gpu` (training). Run at least one worker on `default` apart from the others (README, "Workers").
QUEUE_SHORT, QUEUE_LONG, QUEUE_GPU = "default", "long", "gpu"
CELERY_TASK_DEFAULT_QUEUE = QUEUE_SHORT
CELERY_TASK_ROUTES = {
    "attribution.*": {"queue": QUEUE_LONG},
    "datanets.export_snapshot": {"queue": QUEUE_LONG},
    "settlement.settle_epoch": {"queue": QUEUE_LONG},
    "models_factory.tasks.train_*": {"queue": QUEUE_GPU},
    "watch.*": {"queue": QUEUE_SHORT},  # webhook attempts: seconds each, never behind a training run
}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE = {
    # Jobs whose worker died are sent again (the claim in core.jobs makes a second delivery harmless).
    "requeue-stale-jobs": {"task": "datanets.requeue_stale_jobs", "schedule": 60.0},
    # Unfinished uploads expire: their part files are deleted and their quota is freed.
    "expire-uploads": {"task": "datanets.expire_uploads", "schedule": 3600.0},
    # Earnings of the open epoch update every minute (closing an epoch accrues everything anyway).
    "accrue-receipts": {"task": "settlement.accrue_receipts", "schedule": 60.0},
    # Appeals whose panel missed the deadline go to the Datanet's owner.
    "expire-appeals": {"task": "datanets.expire_appeals", "schedule": 300.0},
    # Pre-built model download zips of versions gone or not downloaded for a while are deleted.
    "expire-model-zips": {"task": "models_factory.expire_model_zips", "schedule": 3600.0},
    # Webhook attempts that are due but whose task was lost with a worker are sent again.
    "webhooks-due": {"task": "watch.deliveries_due", "schedule": 30.0},
}
MODEL_ZIP_MAX_AGE_HOURS = env_int("MODEL_ZIP_MAX_AGE_HOURS", 24 * 7, minimum=1)
CELERY_TASK_ALWAYS_EAGER = False

# --- Datanets limits ------------------------------------------------------------------------------------------
UPLOAD_MAX_BYTES = env_int("UPLOAD_MAX_BYTES", 1024**3, minimum=1)  # 1 GB per file
UPLOAD_CHUNK_BYTES = env_int("UPLOAD_CHUNK_BYTES", 8 * 1024**2, minimum=1024)
UPLOAD_MAX_EXPANDED_BYTES = env_int("UPLOAD_MAX_EXPANDED_BYTES", 4 * 1024**3, minimum=1)  # gzip bomb guard
UPLOAD_MAX_LINE_BYTES = env_int("UPLOAD_MAX_LINE_BYTES", 1024**2, minimum=1024)
PASTE_MAX_BYTES = env_int("PASTE_MAX_BYTES", 1024**2, minimum=1024)
QUOTA_RECORDS_PER_DAY = env_int("QUOTA_RECORDS_PER_DAY", 2_000_000, minimum=1)
QUOTA_BYTES_PER_DAY = env_int("QUOTA_BYTES_PER_DAY", 4 * 1024**3, minimum=1)
# Every row read counts, duplicates and invalid rows included: they cost the worker as much as new ones.
QUOTA_ROWS_PER_DAY = env_int("QUOTA_ROWS_PER_DAY", 10 * QUOTA_RECORDS_PER_DAY, minimum=1)
UPLOADS_OPEN_PER_USER = env_int("UPLOADS_OPEN_PER_USER", 5, minimum=1)
UPLOAD_EXPIRE_HOURS = env_int("UPLOAD_EXPIRE_HOURS", 24, minimum=1)
INGEST_BATCH_SIZE = env_int("INGEST_BATCH_SIZE", 5000, minimum=1)
# Each worker keeps a per-Datanet near-duplicate band index (~112 bytes per record) in memory and saves it here, so
# the next ingestion only catches up on newer records; deleting the folder only costs a rebuild.
BAND_INDEX_DIR = Path(env_str("DATANETS_BAND_INDEX_DIR", str(VAR_DIR / "band-index")))
JOB_STALE_SECONDS = env_int("JOB_STALE_SECONDS", 60, minimum=1)
# Appeals: the panel's deadline; adaptive quorum: how long a drawn curator's turn on a disputed record lasts.
APPEAL_DEADLINE_HOURS = env_int("APPEAL_DEADLINE_HOURS", 72, minimum=1)
# Webhooks: attempts per delivery, the first retry's wait (doubling after), the per-request timeout, how many
# failed attempts in a row disable an endpoint, and whether loopback/private addresses may receive (dev, tests).
WEBHOOK_MAX_ATTEMPTS = env_int("WEBHOOK_MAX_ATTEMPTS", 5, minimum=1)
WEBHOOK_BACKOFF_SECONDS = env_float("WEBHOOK_BACKOFF_SECONDS", 10.0)
WEBHOOK_TIMEOUT_SECONDS = env_float("WEBHOOK_TIMEOUT_SECONDS", 5.0)
WEBHOOK_DISABLE_AFTER = env_int("WEBHOOK_DISABLE_AFTER", 15, minimum=1)
WEBHOOK_ENDPOINTS_PER_USER = env_int("WEBHOOK_ENDPOINTS_PER_USER", 20, minimum=1)
WEBHOOK_ALLOW_PRIVATE_URLS = env_bool("WEBHOOK_ALLOW_PRIVATE_URLS", False)
VOTE_REQUEST_HOURS = env_int("VOTE_REQUEST_HOURS", 48, minimum=1)
# Receipt challenges: how long after a receipt is made anyone may challenge it by recomputing it.
RECEIPT_CHALLENGE_HOURS = env_int("RECEIPT_CHALLENGE_HOURS", 14 * 24, minimum=1)
# A job whose worker died this many times (killed by memory, say) fails instead of being sent again forever.
JOB_MAX_ATTEMPTS = env_int("JOB_MAX_ATTEMPTS", 3, minimum=1)
# Address-space ceiling of each worker child (RLIMIT_AS, MiB; 0: none): a file that would take the machine's memory
# fails its own task with MemoryError. 6 GiB leaves the demo's CPU training room on a 24 GB machine.
WORKER_MEMORY_LIMIT_MB = env_int("WORKER_MEMORY_LIMIT_MB", 12288, minimum=0)
# A child whose resident memory passed this after a task is replaced by a fresh one (MiB; 0: never).
WORKER_MAX_MEMORY_PER_CHILD_MB = env_int("WORKER_MAX_MEMORY_PER_CHILD_MB", 3072, minimum=0)
CELERY_WORKER_MAX_MEMORY_PER_CHILD = WORKER_MAX_MEMORY_PER_CHILD_MB * 1024 or None  # celery counts KiB
DATA_UPLOAD_MAX_MEMORY_SIZE = max(UPLOAD_CHUNK_BYTES + 1024**2, 10 * 1024**2)
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024**2

# --- Model Factory -----------------------------------------------------------------------------------------------
# A base model given as a path must lie under one of these folders (besides the packaged minilm, smollm2, tiny):
# the folders the operator lists, and the model cache the trainers write.
MODEL_CACHE_DIR = Path(env_str("DATANETS_MODEL_CACHE", str(Path.home() / ".cache" / "datanets" / "models")))
MODEL_BASE_DIRS = [*env_list("MODEL_BASE_DIRS", []), str(MODEL_CACHE_DIR)]

# --- Security in production (README.md, "Production") -----------------------------------------------------------
# Cookies travel only over HTTPS unless this is a development run (DATANETS_DEV or DEBUG).
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env_bool("SECURE_COOKIES", not (DEV or DEBUG))
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
# Behind a TLS-terminating proxy: SECURE_PROXY_SSL_HEADER=HTTP_X_FORWARDED_PROTO=https (only if the proxy sets it).
_proxy_header = env_str("SECURE_PROXY_SSL_HEADER", "")
if _proxy_header:
    _header, _sep, _value = _proxy_header.partition("=")
    if not (_sep and _header.startswith("HTTP_") and _value):
        raise ImproperEnv(
            f"SECURE_PROXY_SSL_HEADER={_proxy_header!r} must look like HTTP_X_FORWARDED_PROTO=https "
            "(the request header as Django names it, '=', and the value your proxy sends for HTTPS)"
        )
    SECURE_PROXY_SSL_HEADER = (_header, _value)
# --- Chain and settlement (settlement/chain/config.py; SettlementConfig.ready() checks keys and addresses) ------
CHAIN_RPC_URL = env_str("CHAIN_RPC_URL", "")  # empty: the embedded chain, journaled in CHAIN_JOURNAL_PATH
CHAIN_JOURNAL_PATH = env_str("CHAIN_JOURNAL_PATH", "")  # empty: VAR_DIR/chain/journal.jsonl
CHAIN_ANCHOR_KEY = env_str("CHAIN_ANCHOR_KEY", "")  # required off dev chains; dev chains use the public dev keys
CHAIN_RELAYER_KEY = env_str("CHAIN_RELAYER_KEY", "")
CHAIN_DISTRIBUTOR_ADDRESS = env_str("CHAIN_DISTRIBUTOR_ADDRESS", "")  # production: existing contracts
CHAIN_TOKEN_ADDRESS = env_str("CHAIN_TOKEN_ADDRESS", "")
SETTLEMENT_CONFIRMATIONS = env_int("SETTLEMENT_CONFIRMATIONS", 1, minimum=1)
SETTLEMENT_STUCK_SECONDS = env_float("SETTLEMENT_STUCK_SECONDS", 60.0, minimum=0.0)
WALLET_CHANGE_HOLD_HOURS = env_int("WALLET_CHANGE_HOLD_HOURS", 48, minimum=0)

# --- Email (account notices: a changed reward wallet) ----------------------------------------------------------
EMAIL_BACKEND = env_str(
    "EMAIL_BACKEND",
    "django.core.mail.backends.console.EmailBackend" if DEV else "django.core.mail.backends.smtp.EmailBackend",
)
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Datanets <noreply@localhost>")
TOKEN_UNITS_PER_CREDIT = env_int("TOKEN_UNITS_PER_CREDIT", 10**18, minimum=1)

SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}, "kombu.connection": {"level": "ERROR"}},
}
