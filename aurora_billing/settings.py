"""Settings for the Aurora billing console.

Every value that differs between machines comes from the environment
(django-environ). Without any environment the project runs locally on safe
defaults: a SQLite file under ``var/``, files under ``var/media``, email
printed to the console and Celery tasks executed in-process.
See docs/configuration.md for the full list.
"""
import ipaddress
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(environ.Env().str("VAR_DIR", default=str(BASE_DIR / "var")))

env = environ.Env()

DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("SECRET_KEY must be set when DEBUG is off.")
    SECRET_KEY = "insecure-development-key-only-for-debug"  # noqa: S105

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
# Absolute base URL used in emails and provider callbacks.
SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:8000").rstrip("/")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_celery_beat",
    "axes",
    # the bottom layer (money, periods, audit log, queue, bulk insert), then
    # the apps in their import order (docs/architecture.md)
    "core",
    "accounts",
    "usage",
    "invoices",
    "payments",
    # last: its admin extends the apps' admins, and its post_migrate hook
    # runs once every app's permissions exist
    "aurora_billing",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # the language: the set_language cookie, else Accept-Language, else
    # English; UserLanguageMiddleware then puts the signed-in user's saved
    # preference first (docs/i18n.md)
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "accounts.middleware.UserLanguageMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "accounts.middleware.CurrentAccountMiddleware",
    "aurora_billing.middleware.DatabaseUnavailableMiddleware",
    "aurora_billing.middleware.BillingTimeZoneMiddleware",
    # last, as django-axes asks: answers a locked-out sign-in with a 429 page
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "aurora_billing.urls"
WSGI_APPLICATION = "aurora_billing.wsgi.application"

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
                "accounts.context_processors.current_account",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------
# DATABASE_URL, e.g. postgres://user:pass@host:5432/aurora. Default: SQLite.
VAR_DIR.mkdir(parents=True, exist_ok=True)
DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'aurora.sqlite3'}"),
}
DATABASES["default"]["ATOMIC_REQUESTS"] = False
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=0)
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A busy SQLite file waits instead of failing at once (local demo, tests).
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 20
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "accounts.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "billing:summary"
LOGOUT_REDIRECT_URL = "login"

# --- Languages (docs/i18n.md) -----------------------------------------------
# English and Simplified Chinese. The project catalog is locale/ (compiled by
# `make install`); apps may keep their own catalogs in <app>/locale/.
LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("zh-hans", "简体中文")]
LOCALE_PATHS = [BASE_DIR / "locale"]
USE_I18N = True
# Date formats per language: aurora_billing/formats/<lang>/formats.py
# (``2026年10月``, ``2026-10-05``); money and quantities are never localised.
FORMAT_MODULE_PATH = ["aurora_billing.formats"]

# --- Time -----------------------------------------------------------------
# Instants are stored in UTC; the billing calendar (UTC+8) lives in
# core/periods.py.
TIME_ZONE = "UTC"
USE_TZ = True
BILLING_TIME_ZONE = "Asia/Shanghai"

# --- Static and uploaded files -------------------------------------------
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = VAR_DIR / "staticfiles"
MEDIA_ROOT = VAR_DIR / "media"
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
# Uploaded files are private: no MEDIA_URL is routed; views serve them after
# an access check.
AWS_STORAGE_BUCKET_NAME = env.str("AWS_STORAGE_BUCKET_NAME", default="")
if AWS_STORAGE_BUCKET_NAME:
    _default_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": AWS_STORAGE_BUCKET_NAME,
            "region_name": env.str("AWS_S3_REGION_NAME", default=None),
            "endpoint_url": env.str("AWS_S3_ENDPOINT_URL", default=None),
            "default_acl": "private",
            "querystring_auth": True,
            "file_overwrite": False,
        },
    }
else:
    _default_storage = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(MEDIA_ROOT), "base_url": None},
    }
STORAGES = {
    "default": _default_storage,
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if not DEBUG and env.bool("STATIC_MANIFEST", default=True)
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}
# Requests above this are refused before a view runs (business license ≤ 2 MiB
# plus form fields); the API keeps its own limit in usage/api.py.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=12 * 1024 * 1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440

# --- Email ----------------------------------------------------------------
# EMAIL_URL, e.g. smtp+tls://user:pass@smtp.example.com:587. Default: console.
EMAIL_CONFIG = env.email_url("EMAIL_URL", default="consolemail://")
vars().update(EMAIL_CONFIG)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Aurora SendCloud Billing <billing@aurora.example>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=30)

# --- Redis, cache and Celery ---------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env.str("CACHE_KEY_PREFIX", default="aurora"),
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL or "memory://")
CELERY_RESULT_BACKEND = None
# Without a broker the local demo runs tasks in-process.
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=not REDIS_URL)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TIMEZONE = BILLING_TIME_ZONE
CELERY_ENABLE_UTC = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# A broker outage must not hang a web request: publishing gives up quickly
# (aurora_billing/queue.py logs it; the daily beat jobs pick up what is due).
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}
CELERY_BROKER_TRANSPORT_OPTIONS = {"socket_connect_timeout": 2, "socket_timeout": 5, "visibility_timeout": 3600}
DJANGO_CELERY_BEAT_TZ_AWARE = True

# --- Security -------------------------------------------------------------
SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE", default=8 * 3600)
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
if not DEBUG:
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=True)
    CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=True)
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
# Content Security Policy (django-csp): same-origin everything, no framing.
# Inline style attributes are allowed (server-rendered SVG charts); scripts
# are same-origin files only.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "frame-ancestors": ["'none'"],
    },
}
# Client addresses (aurora_billing/security.py::client_ip): REMOTE_ADDR,
# unless the peer is one of these proxies (comma-separated addresses or
# CIDR networks); then the right-most X-Forwarded-For hop that is not one.
# Give gunicorn the same list (--forwarded-allow-ips, see Procfile).
TRUSTED_PROXY_IPS = env.list("TRUSTED_PROXY_IPS", default=[])
TRUSTED_PROXY_NETWORKS = [ipaddress.ip_network(item, strict=False) for item in TRUSTED_PROXY_IPS]
# Sign-in lockout (django-axes, database handler): LOGIN_FAILURE_LIMIT wrong
# passwords for one (email, client address) pair lock that pair; the first
# lock lasts LOGIN_COOL_OFF_BASE seconds, each further one within a day 3x
# longer up to LOGIN_COOL_OFF_MAX. A password reset lifts the lock.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
LOGIN_COOL_OFF_BASE = env.int("LOGIN_COOL_OFF_BASE", default=60)
LOGIN_COOL_OFF_MAX = env.int("LOGIN_COOL_OFF_MAX", default=15 * 60)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_COOLOFF_TIME = "aurora_billing.security.lockout_cool_off"
AXES_RESET_ON_SUCCESS = True
AXES_ENABLE_ACCESS_FAILURE_LOG = True  # the progressive cool-off counts these
AXES_USERNAME_FORM_FIELD = "username"
AXES_USERNAME_CALLABLE = "aurora_billing.security.sign_in_username"
AXES_CLIENT_IP_CALLABLE = "aurora_billing.security.client_ip"
AXES_LOCKOUT_CALLABLE = "aurora_billing.security.lockout_response"
AXES_VERBOSE = False
# Password reset: requests per window, per email and per client address.
PASSWORD_RESET_EMAIL_LIMIT = env.int("PASSWORD_RESET_EMAIL_LIMIT", default=3)
PASSWORD_RESET_CLIENT_LIMIT = env.int("PASSWORD_RESET_CLIENT_LIMIT", default=10)
PASSWORD_RESET_WINDOW = env.int("PASSWORD_RESET_WINDOW", default=60 * 60)

# --- Logging --------------------------------------------------------------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
# LOG_FORMAT=json: one JSON object per line (python-json-logger) for log
# shippers; plain text by default.
LOG_FORMAT = env.str("LOG_FORMAT", default="plain")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "format": "%(asctime)s %(levelname)s %(name)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    },
    "filters": {
        "client_errors_one_line": {"()": "aurora_billing.log_filters.ClientErrorsOneLine"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "json" if LOG_FORMAT == "json" else "plain"},
    },
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        # propagates to root's handler; the filter runs where the record is made
        "django.request": {"level": "WARNING", "filters": ["client_errors_one_line"]},
        "aurora": {"handlers": ["console"], "level": LOG_LEVEL, "propagate": False},
    },
}

# --- Billing information uploads (accounts/uploads.py, docs/billing-info.md) ---
# The business license: at most 2 MB (2,097,152 bytes); a larger file is
# read and discarded as it streams in, so the typed fields are kept. Only a
# request above 32 MB is refused from its Content-Length, unread. Decoded
# images above the pixel or side limits are refused as decompression bombs;
# the decode limits (docs/operations.md, "License image decoding") are
# judged from the header before any pixel is decoded.
BILLING_LICENSE_MAX_BYTES = 2_097_152
BILLING_INFO_REQUEST_MAX_BYTES = 32 * 1024 * 1024
BILLING_LICENSE_MAX_PIXELS = 40_000_000
BILLING_LICENSE_MAX_SIDE = 12_000
BILLING_LICENSE_DECODE_MAX_BYTES = 128 * 1024 * 1024  # peak Pillow image memory of one check
BILLING_LICENSE_MAX_RATIO = 200  # decoded bytes per file byte, above 8 MB decoded
BILLING_LICENSE_RATIO_MIN_BYTES = 8 * 1024 * 1024
BILLING_LICENSE_DECODE_CONCURRENCY = env.int("BILLING_LICENSE_DECODE_CONCURRENCY", default=2)  # per process
BILLING_LICENSE_DECODE_WAIT_SECONDS = 2.0
# Stored licenses are readable by the application's user only.
FILE_UPLOAD_PERMISSIONS = 0o640
FILE_UPLOAD_DIRECTORY_PERMISSIONS = 0o750
BILLING_SUPPORT_EMAIL = env.str("BILLING_SUPPORT_EMAIL", default="support@aurora.example")
# --- end billing information uploads ---

# --- Payments (payments/, docs/payments.md) ---------------------------------
# A provider is offered only when configured. The sandbox provider approves
# payments without money: it is on with DEBUG only, unless set explicitly.
PAYMENTS_SANDBOX = env.bool("PAYMENTS_SANDBOX", default=DEBUG)
# Top-ups through the console: the amount the payer may choose (account currency).
PAYMENTS_TOPUP_MIN = env.str("PAYMENTS_TOPUP_MIN", default="1.00")
PAYMENTS_TOPUP_MAX = env.str("PAYMENTS_TOPUP_MAX", default="100000.00")
# Local emulators of Alipay and PayPal (payments/emulators): for the demo, the
# tests and CI. On, they are the default for every Alipay and PayPal setting
# below (an environment value still wins); `check --deploy` warns when they
# are on with DEBUG off. Off by default: production talks to the real gateways.
PAYMENT_EMULATORS = env.bool("PAYMENT_EMULATORS", default=False)
if PAYMENT_EMULATORS:
    from payments.emulators import provider_settings as _emulated_providers

    _provider_defaults = _emulated_providers(site_url=SITE_URL)
else:
    _provider_defaults = {"ALIPAY_GATEWAY": "https://openapi.alipay.com/gateway.do",
                          "PAYPAL_API_BASE": "https://api-m.paypal.com"}
# Alipay (open platform, RSA2): the merchant app's private key signs requests,
# Alipay's public key verifies notifications (PEM, or the bare base64 body).
ALIPAY_APP_ID = env.str("ALIPAY_APP_ID", default=_provider_defaults.get("ALIPAY_APP_ID", ""))
ALIPAY_PRIVATE_KEY = env.str("ALIPAY_PRIVATE_KEY", default=_provider_defaults.get("ALIPAY_PRIVATE_KEY", ""),
                             multiline=True)
ALIPAY_PUBLIC_KEY = env.str("ALIPAY_PUBLIC_KEY", default=_provider_defaults.get("ALIPAY_PUBLIC_KEY", ""),
                            multiline=True)
ALIPAY_GATEWAY = env.str("ALIPAY_GATEWAY", default=_provider_defaults["ALIPAY_GATEWAY"])
# PayPal (Orders v2, webhooks verified with PayPal's certificate).
PAYPAL_CLIENT_ID = env.str("PAYPAL_CLIENT_ID", default=_provider_defaults.get("PAYPAL_CLIENT_ID", ""))
PAYPAL_CLIENT_SECRET = env.str("PAYPAL_CLIENT_SECRET", default=_provider_defaults.get("PAYPAL_CLIENT_SECRET", ""))
PAYPAL_WEBHOOK_ID = env.str("PAYPAL_WEBHOOK_ID", default=_provider_defaults.get("PAYPAL_WEBHOOK_ID", ""))
PAYPAL_API_BASE = env.str("PAYPAL_API_BASE", default=_provider_defaults["PAYPAL_API_BASE"])
# Wire transfer: the bank details shown to the payer, one item per line
# ("\n" in the variable separates lines). Empty: wire transfer is not offered.
WIRE_BANK_DETAILS = env.str(
    "WIRE_BANK_DETAILS", multiline=True,
    default=("Beneficiary: Aurora SendCloud Pte. Ltd. (demo)\nBank: Example Bank Singapore (demo)\n"
             "Account number: 000-000000-0 (demo)\nSWIFT/BIC: EXAMPLESGXXX (demo)") if DEBUG else "",
)
# --- end payments ---
