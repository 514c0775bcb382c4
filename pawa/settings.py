"""PAWA settings, read from the environment.

Every value has a default that makes `make run` work on one machine with nothing set;
production values (docker-compose.yml) come from environment variables.
"""

import os
import secrets
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

from pawa.ops.logs import logging_config

BASE_DIR = Path(__file__).resolve().parent.parent


def env(name: str, default: str = "") -> str:
    """Read NAME, or the contents of the file named by NAME_FILE (for secrets)."""
    file_name = os.environ.get(f"{name}_FILE")
    if file_name:
        return Path(file_name).read_text().strip()
    return os.environ.get(name, default)


def envbool(name: str, default: str) -> bool:
    return env(name, default).strip().lower() in {"1", "true", "yes", "on"}


def envint(name: str, default: str) -> int:
    return int(env(name, default))


def envlist(name: str, default: str) -> list[str]:
    return [item.strip() for item in env(name, default).split(",") if item.strip()]


VAR_DIR = Path(env("PAWA_VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def _secret_key() -> str:
    configured = env("SECRET_KEY")
    if configured:
        return configured
    # Generated once per installation and kept out of the repository.
    key_file = VAR_DIR / "secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(64))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = envbool("DEBUG", "0")
ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", "127.0.0.1,localhost,[::1],testserver")
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS", "")

# HTTPS hardening, switched on by the production environment (docker-compose.yml).
HTTPS = envbool("PAWA_HTTPS", "0")
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_SSL_REDIRECT = HTTPS and envbool("PAWA_SSL_REDIRECT", "1")
SECURE_HSTS_SECONDS = envint("PAWA_HSTS_SECONDS", "31536000") if HTTPS else 0
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
SECURE_HSTS_PRELOAD = HTTPS
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if HTTPS else None
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
# Health checks answer on plain HTTP inside the deployment (container healthchecks).
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]

# Nothing on a PAWA page may load from or send to another host (django-csp).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:", "blob:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "frame-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

INSTALLED_APPS = [
    "pawa.accounts",  # first: its createsuperuser (by email) replaces django.contrib.auth's
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "channels",
    "corsheaders",
    "csp",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "pawa.ops",
    "pawa.llm",
    "pawa.generation",
    "pawa.chat",
    "pawa.api",
    "pawa.pages",
    "pawa.dashboard",
    "pawa.plans",
    "pawa.console",
    "pawa.adaptation",
    "allauth",
    "allauth.account",
]

MIDDLEWARE = [
    "pawa.ops.middleware.RequestIdMiddleware",
    "pawa.ops.middleware.RequestMetricsMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
]

ROOT_URLCONF = "pawa.urls"
ASGI_APPLICATION = "pawa.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        env("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
        # ASGI serves each request from a fresh thread: persistent connections leak.
        conn_max_age=0,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"].setdefault("OPTIONS", {}).update({
        # Web server and worker write to the same file: wait for locks instead of failing.
        "timeout": 20,
        # Every transaction takes the write lock when it begins. A deferred one that reads and
        # then writes fails at once with "database is locked" when another writer got in first
        # (the busy timeout does not help there); and admission counts then inserts, which
        # must not interleave with another request's count.
        "transaction_mode": "IMMEDIATE",
        # WAL: readers never wait for the writer; NORMAL sync is safe with WAL.
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    })
    # A file, not memory, so that tests can run a worker in another process on it.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-db.sqlite3")}
elif DATABASES["default"]["ENGINE"].startswith("django.db.backends.postgresql"):
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("connect_timeout", 5)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# One Redis for the cache (rate limits, login throttling), Celery and Channels.
# Without REDIS_URL the platform runs its own Redis (see pawa/localredis.py).
EMBEDDED_REDIS_PORT = envint("PAWA_EMBEDDED_REDIS_PORT", "6389")
REDIS_URL = env("REDIS_URL") or f"redis://127.0.0.1:{EMBEDDED_REDIS_PORT}/0"
REDIS_EMBEDDED = not env("REDIS_URL")
# Every key, queue and channel this installation writes starts with this prefix, so two
# installations (or a test run beside `make run`) can share one Redis without mixing.
REDIS_PREFIX = env("PAWA_REDIS_PREFIX", "pawa")
PAWA_QUEUE_KEY = f"{REDIS_PREFIX}:queue"

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": REDIS_PREFIX,
    }
}
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        # channels-redis blocks up to 5 s per read; redis-py's default socket timeout is also
        # 5 s, so give reads more room.
        "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": 30}], "prefix": f"{REDIS_PREFIX}:channels:"},
    }
}

CELERY_BROKER_URL = REDIS_URL
PAWA_INFERENCE_QUEUE = env("PAWA_INFERENCE_QUEUE", "inference")
CELERY_TASK_DEFAULT_QUEUE = env("PAWA_DEFAULT_QUEUE", "default")
# Training (manage.py models adapt, /console/adapt/) runs on its own queue and worker.
PAWA_TRAINING_QUEUE = env("PAWA_TRAINING_QUEUE", "training")
CELERY_TASK_ROUTES = {"pawa.generation.*": {"queue": PAWA_INFERENCE_QUEUE},
                      "pawa.adaptation.*": {"queue": PAWA_TRAINING_QUEUE}}
# "inference" (chat and API answers) or "training": what this worker process does. A training
# worker neither registers as an inference worker nor preloads a model.
PAWA_WORKER_ROLE = env("PAWA_WORKER_ROLE", "inference")
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = envint("PAWA_TASK_TIME_LIMIT", "900")
CELERY_TASK_SOFT_TIME_LIMIT = envint("PAWA_TASK_SOFT_TIME_LIMIT", "840")
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Enqueueing must never hang a web request: bounded waits for a pooled producer, a connection
# and each socket operation, and a few quick publish retries. A failure becomes a 503.
CELERY_BROKER_POOL_LIMIT = envint("PAWA_BROKER_POOL_LIMIT", "32")
CELERY_BROKER_POOL_ACQUIRE_TIMEOUT = 5
CELERY_BROKER_CONNECTION_TIMEOUT = 3
CELERY_BROKER_TRANSPORT_OPTIONS = {"socket_timeout": 5, "socket_connect_timeout": 3}
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.5, "interval_max": 1}
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Inference workers: the threads pool (a loaded CTranslate2 model is not fork-safe), one
# process holding each model once, its task threads feeding the model's batch scheduler.
# Celery's time limits do not apply to this pool: PAWA_GENERATION_TIME_LIMIT does.

AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "home"

# django-allauth: email + password accounts.
ACCOUNT_ADAPTER = "pawa.accounts.adapter.AccountAdapter"
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_EMAIL_VERIFICATION = env("ACCOUNT_EMAIL_VERIFICATION", "none")
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = True
ACCOUNT_SESSION_REMEMBER = None
ACCOUNT_RATE_LIMITS = {
    "login_failed": env("PAWA_LOGIN_FAILED_LIMIT", "5/5m/ip,5/5m/key"),
    "signup": env("PAWA_SIGNUP_LIMIT", "20/m/ip"),
    "reset_password": "20/m/ip,5/m/key",
    "change_password": "5/m/user",
}
ACCOUNT_EMAIL_SUBJECT_PREFIX = "[PAWA] "
ACCOUNT_DEFAULT_HTTP_PROTOCOL = "https" if HTTPS else "http"

EMAIL_BACKEND = env("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env("EMAIL_HOST", "localhost")
EMAIL_PORT = envint("EMAIL_PORT", "25")
EMAIL_HOST_USER = env("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = envbool("EMAIL_USE_TLS", "0")
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", "PAWA <pawa@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# Languages: Swahili first.
LANGUAGE_CODE = "sw"
LANGUAGES = [("sw", _("Kiswahili")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale", BASE_DIR / "locale_thirdparty"]
# Swahili date formats (Django has none for sw): "29 Novemba 2026", not "Nov. 29, 2026".
FORMAT_MODULE_PATH = ["pawa.formats"]
LANGUAGE_COOKIE_AGE = 365 * 24 * 3600
USE_I18N = True
TIME_ZONE = env("TIME_ZONE", "Africa/Dar_es_Salaam")
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"

# Bad input gets a 400, not a crash: cap request bodies.
DATA_UPLOAD_MAX_MEMORY_SIZE = envint("PAWA_MAX_BODY_BYTES", str(1024 * 1024))
DATA_UPLOAD_MAX_NUMBER_FIELDS = 200

REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["pawa.api.parsers.StrictJSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "pawa.api.errors.exception_handler",
    "UNAUTHENTICATED_USER": None,
}
# CORS for browser apps calling /v1/ (django-cors-headers). The API authenticates with a bearer
# key, never a cookie, so credentials are not allowed and "*" (the default) lets any web page
# call the API *with a key the page holds*: a key pasted into a public page is public. List the
# origins of your own apps (comma-separated, e.g. "https://app.example.org") to narrow it.
PAWA_API_CORS_ORIGINS = envlist("PAWA_API_CORS_ORIGINS", "*")
CORS_URLS_REGEX = r"^/v1/.*$"
CORS_ALLOW_ALL_ORIGINS = PAWA_API_CORS_ORIGINS == ["*"]
CORS_ALLOWED_ORIGINS = [] if CORS_ALLOW_ALL_ORIGINS else PAWA_API_CORS_ORIGINS
CORS_ALLOW_CREDENTIALS = False
CORS_ALLOW_HEADERS = ["authorization", "content-type", "accept", "accept-language", "x-request-id",
                      "openai-organization", "openai-project", "openai-beta", "x-stainless-arch",
                      "x-stainless-lang", "x-stainless-os", "x-stainless-package-version",
                      "x-stainless-runtime", "x-stainless-runtime-version", "x-stainless-retry-count",
                      "x-stainless-timeout", "x-stainless-async"]
CORS_EXPOSE_HEADERS = ["x-request-id", "openai-processing-ms", "retry-after", "x-ratelimit-limit-requests",
                       "x-ratelimit-remaining-requests", "x-ratelimit-reset-requests"]
CORS_PREFLIGHT_MAX_AGE = 600

SPECTACULAR_SETTINGS = {
    "TITLE": "PAWA API",
    "DESCRIPTION": "OpenAI-compatible API of this PAWA server. Authenticate with 'Authorization: Bearer pawa-…'.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SCHEMA_PATH_PREFIX": "/v1",
}

# Every record carries the request and generation ids (pawa/ops/logs.py); PAWA_LOG_FORMAT=json
# writes one JSON object per line.
PAWA_LOG_FORMAT = env("PAWA_LOG_FORMAT", "plain").strip().lower()
LOGGING = logging_config(log_format=PAWA_LOG_FORMAT, level=env("LOG_LEVEL", "INFO"))
CSRF_FAILURE_VIEW = "pawa.pages.views.csrf_failure"

# Language models (see inference/ and `manage.py models`).
PAWA_MODELS_DIR = Path(env("PAWA_MODELS_DIR", str(VAR_DIR / "models")))
PAWA_DEFAULT_MODEL = env("PAWA_DEFAULT_MODEL", "gemma3-270m")
PAWA_DEVICE = env("PAWA_DEVICE", "auto")
PAWA_BUILTIN_MODELS = envlist("PAWA_BUILTIN_MODELS", "smollm2-135m-instruct,gemma3-270m")

# Generations (chat and API): limits and streaming.
PAWA_MAX_CONCURRENT_GENERATIONS = envint("PAWA_MAX_CONCURRENT_GENERATIONS", "2")
# Waiting generations (chat and API together) before new ones are refused.
PAWA_MAX_QUEUE = envint("PAWA_MAX_QUEUE", env("PAWA_API_MAX_QUEUE", "64"))
# Worker registry: each worker process refreshes its key every few seconds; it expires after
# PAWA_WORKER_TTL seconds without one. Queued generations fail when no worker has been seen for
# PAWA_NO_WORKER_GRACE seconds; a running one whose worker stopped beating becomes interrupted.
PAWA_WORKER_HEARTBEAT_SECONDS = envint("PAWA_WORKER_HEARTBEAT_SECONDS", "3")
PAWA_WORKER_TTL = envint("PAWA_WORKER_TTL", "10")
PAWA_NO_WORKER_GRACE = envint("PAWA_NO_WORKER_GRACE", "10")
PAWA_REAP_SECONDS = envint("PAWA_REAP_SECONDS", "15")
# A generation still queued after this long is ended with an error (its task was lost).
PAWA_MAX_QUEUE_SECONDS = envint("PAWA_MAX_QUEUE_SECONDS", "900")
PAWA_MAX_MESSAGE_CHARS = envint("PAWA_MAX_MESSAGE_CHARS", "8000")
PAWA_STREAM_FLUSH_MS = envint("PAWA_STREAM_FLUSH_MS", "50")
# Batching in each worker process (see README "Sizing"): 0 means the measured default.
PAWA_INTRA_THREADS = envint("PAWA_INTRA_THREADS", "0")  # cores per batch; default: the model card's
PAWA_ENGINE_REPLICAS = envint("PAWA_ENGINE_REPLICAS", "0")  # batches at once; default: cores / intra threads
PAWA_MAX_BATCH_SIZE = envint("PAWA_MAX_BATCH_SIZE", "0")  # sequences per batch; default 8 (CPU), 32 (GPU)
PAWA_GENERATION_TIME_LIMIT = envint("PAWA_GENERATION_TIME_LIMIT", "300")  # seconds per answer
# Task threads per worker process: generations it accepts at once (0: cores x batch size).
PAWA_WORKER_CONCURRENCY = envint("PAWA_WORKER_CONCURRENCY", "0") or min(
    64, max(4, (os.cpu_count() or 1) * (PAWA_MAX_BATCH_SIZE or 8))
)
CELERY_WORKER_POOL = "threads"
CELERY_WORKER_CONCURRENCY = PAWA_WORKER_CONCURRENCY
PAWA_PRELOAD_MODEL = envbool("PAWA_PRELOAD_MODEL", "1")

# Plans (pawa/plans): every user has one; PAWA_DEFAULT_PLAN (a plan's short name, e.g. "free")
# names the plan of users without their own, else the plan marked default in the console.
PAWA_DEFAULT_PLAN = env("PAWA_DEFAULT_PLAN", "")
# New sign-ups wait for an administrator's approval before they can chat or call the API.
PAWA_REQUIRE_APPROVAL = envbool("PAWA_REQUIRE_APPROVAL", "0")

# Developer API limits (per key; admins override per user).
PAWA_API_REQUESTS_PER_MINUTE = envint("PAWA_API_REQUESTS_PER_MINUTE", "60")
PAWA_API_TOKENS_PER_MINUTE = envint("PAWA_API_TOKENS_PER_MINUTE", "20000")

# GET /metrics (Prometheus): loopback clients always; other addresses when they are in
# PAWA_METRICS_ALLOW (comma-separated CIDRs, e.g. "10.0.0.0/8,192.168.1.5/32") or send
# "Authorization: Bearer <PAWA_METRICS_TOKEN>" (or PAWA_METRICS_TOKEN_FILE).
PAWA_METRICS_ALLOW = envlist("PAWA_METRICS_ALLOW", "")
PAWA_METRICS_TOKEN = env("PAWA_METRICS_TOKEN")


def _check_networks(names: list[str]) -> None:
    import ipaddress

    for name in names:
        try:
            ipaddress.ip_network(name, strict=False)
        except ValueError:
            raise ImproperlyConfigured(f"PAWA_METRICS_ALLOW: {name!r} is not an address or CIDR network") from None


_check_networks(PAWA_METRICS_ALLOW)
