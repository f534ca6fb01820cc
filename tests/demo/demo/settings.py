"""Settings of the demo project.

Twelve-factor: everything that differs between hosts comes from the environment variables the
djangoprod.stack django role writes to /etc/<app>/env, and from nothing else:

    SECRET_KEY DATABASE_URL DATABASE_REPLICA_URLS CACHE_URL CELERY_BROKER_URL
    REDIS_SENTINELS REDIS_SENTINEL_PASSWORD CACHE_MASTER_NAME CELERY_BROKER_MASTER_NAME
    ALLOWED_HOSTS CSRF_TRUSTED_ORIGINS
    SECURE_SSL_REDIRECT SECURE_HSTS_SECONDS SECURE_HSTS_INCLUDE_SUBDOMAINS SECURE_HSTS_PRELOAD
    SECURE_PROXY_SSL_HEADER SESSION_COOKIE_SECURE CSRF_COOKIE_SECURE
    STATIC_ROOT MEDIA_ROOT LOG_DIR HEARTBEAT_SECONDS

Its own static assets are in the top-level static/ (STATICFILES_DIRS).
"""
import os
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env(name, default=""):
    return os.environ.get(name, default)


def env_required(name):
    value = os.environ.get(name, "")
    if not value:
        raise ImproperlyConfigured(f"The environment variable {name} is required")
    return value


def env_bool(name, default=False):
    value = os.environ.get(name, "")
    if not value:
        return default
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name} must be true or false, not {value!r}")


def env_int(name, default):
    value = os.environ.get(name, "")
    try:
        return int(value) if value else default
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, not {value!r}") from None


def env_list(name):
    return [item.strip() for item in os.environ.get(name, "").split(",") if item.strip()]


def database_from_url(url, name="DATABASE_URL"):
    """postgres://user:pass@host:port/name?sslmode=require, or sqlite:////absolute/path; name is
    the environment variable the URL comes from, for error messages."""
    parts = urlsplit(url)
    if parts.scheme in ("postgres", "postgresql"):
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parts.path.lstrip("/")),
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": unquote(parts.hostname or ""),
            "PORT": str(parts.port or ""),
            "OPTIONS": dict(parse_qsl(parts.query)),
            "CONN_MAX_AGE": 60,
            "CONN_HEALTH_CHECKS": True,
        }
    if parts.scheme == "sqlite":
        # sqlite:///abs/path and sqlite:////abs/path both name /abs/path.
        path = "/" + parts.path.lstrip("/")
        if parts.netloc or path == "/":
            raise ImproperlyConfigured(f"{name}: use sqlite:////absolute/path/to/db.sqlite3")
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": path}
    raise ImproperlyConfigured(f"{name}: unsupported scheme {parts.scheme!r}")


def sentinels_from_env():
    """REDIS_SENTINELS ("address:port,address:port,...") as (address, port) pairs."""
    pairs = []
    for item in env_list("REDIS_SENTINELS"):
        address, _sep, port = item.rpartition(":")
        if not address or not port.isdigit():
            raise ImproperlyConfigured(f"REDIS_SENTINELS: {item!r} is not address:port")
        pairs.append((address.strip("[]"), int(port)))
    return pairs


def cache_from_url(value, sentinels):
    """CACHE_URL: one redis:// URL, or several joined with commas for a cache spread over several
    Redis hosts; behind Sentinels (CACHE_MASTER_NAME set), the URL's host is that name."""
    urls = [url for url in value.split(",") if url]
    if not urls:
        return {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
    if any(urlsplit(url).scheme not in ("redis", "rediss", "unix") for url in urls):
        raise ImproperlyConfigured("CACHE_URL must be redis:// or rediss:// URLs")
    master = env("CACHE_MASTER_NAME")
    if len(urls) > 1:
        if master:
            raise ImproperlyConfigured("CACHE_MASTER_NAME names one primary: CACHE_URL must be one URL")
        # Spread over several hosts: django-redis's ShardClient hashes each key to one of them
        # (every client lists the same URLs, in the same order). A shard that is gone turns its
        # keys into misses (IGNORE_EXCEPTIONS), refused at once or after the connect timeout when
        # its host hangs, and the other shards keep their keys.
        return {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": urls,
            "OPTIONS": {
                "CLIENT_CLASS": "django_redis.client.ShardClient",
                "IGNORE_EXCEPTIONS": True,
                "SOCKET_CONNECT_TIMEOUT": 0.5,
                "SOCKET_TIMEOUT": 1,
            },
        }
    if not master:
        return {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": urls[0]}
    # Behind Sentinels: django-redis's SentinelClient asks them where the primary named in the
    # URL (CACHE_MASTER_NAME) is, writes there, reads from the replicas, and follows a failover.
    # Django's own RedisCache with a list of servers would not: it writes to the first one.
    if not sentinels:
        raise ImproperlyConfigured("CACHE_MASTER_NAME needs REDIS_SENTINELS")
    if urlsplit(urls[0]).hostname != master:
        raise ImproperlyConfigured("With CACHE_MASTER_NAME, the host of CACHE_URL is that name")
    return {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": urls[0],
        "OPTIONS": {
            "CLIENT_CLASS": "django_redis.client.SentinelClient",
            "CONNECTION_FACTORY": "django_redis.pool.SentinelConnectionFactory",
            "CONNECTION_POOL_CLASS": "redis.sentinel.SentinelConnectionPool",
            "SENTINELS": sentinels,
            "SENTINEL_KWARGS": sentinel_kwargs(),
            # A primary that hangs (not one that is gone) must not hang the request.
            "SOCKET_CONNECT_TIMEOUT": 2,
            "SOCKET_TIMEOUT": 2,
        },
    }


def sentinel_kwargs():
    """How clients talk to the Sentinels: their password, short timeouts and no retry. A Sentinel
    whose host hangs accepts the connection (the kernel does) and never answers: without a
    timeout the client waits for it forever, and with redis-py's default retries (three, with
    backoff) it waits 15 s, instead of asking the next Sentinel at once."""
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return {"password": env_required("REDIS_SENTINEL_PASSWORD"), "socket_timeout": 1, "socket_connect_timeout": 1,
            "retry": Retry(NoBackoff(), 0)}


SECRET_KEY = env_required("SECRET_KEY")
DEBUG = False
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "core",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "demo.urls"
WSGI_APPLICATION = "demo.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": database_from_url(env_required("DATABASE_URL"))}
# Read replicas: replica1, replica2... in the order of DATABASE_REPLICA_URLS (comma separated,
# empty for none). The router sends reads there and writes and migrations to "default"; tests
# of the project see the primary's data through them (MIRROR).
for number, url in enumerate(env_list("DATABASE_REPLICA_URLS"), start=1):
    DATABASES[f"replica{number}"] = {
        **database_from_url(url, "DATABASE_REPLICA_URLS"),
        "TEST": {"MIRROR": "default"},
    }
DATABASE_ROUTERS = ["demo.db_router.PrimaryReplicaRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
REDIS_SENTINELS = sentinels_from_env()
CACHES = {"default": cache_from_url(env("CACHE_URL"), REDIS_SENTINELS)}

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# Static files are collected per release and served by nginx; hashed names let nginx send
# long cache lifetimes safely.
STATIC_URL = "/static/"
STATIC_ROOT = env("STATIC_ROOT", str(BASE_DIR / "staticfiles"))
# The project's own source assets, in a top-level static/ (so STATIC_ROOT cannot be there).
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_URL = "/media/"
MEDIA_ROOT = env("MEDIA_ROOT", str(BASE_DIR / "media"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.ManifestStaticFilesStorage"},
}
# nginx (another user) serves uploads straight from MEDIA_ROOT.
FILE_UPLOAD_PERMISSIONS = 0o644
FILE_UPLOAD_DIRECTORY_PERMISSIONS = 0o755

# HTTPS, behind nginx.
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
# Probes may talk to gunicorn directly over its socket, without nginx's X-Forwarded-Proto.
SECURE_REDIRECT_EXEMPT = [r"^health/$", r"^ready/$"]
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS")
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD")
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("SECURE_PROXY_SSL_HEADER") else None
)
USE_X_FORWARDED_HOST = False
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", True)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", True)
X_FRAME_OPTIONS = "DENY"

# No SILENCED_SYSTEM_CHECKS: the django role's deploy check leaves out security.W021 while it keeps
# SECURE_HSTS_PRELOAD off (django_check_deploy_silenced).

# Celery: the broker doubles as the result backend.
CELERY_BROKER_URL = env("CELERY_BROKER_URL")
CELERY_RESULT_BACKEND = CELERY_BROKER_URL or None
if REDIS_SENTINELS and CELERY_BROKER_URL:
    # sentinel://user:password@sentinel:26379/0;sentinel://...: the broker and the results go to
    # the primary the Sentinels name, and follow a failover. A task is redelivered when a worker
    # has not acknowledged it within visibility_timeout: keep it above the longest ETA or
    # countdown the project uses.
    _sentinel_options = {
        "master_name": env_required("CELERY_BROKER_MASTER_NAME"),
        "sentinel_kwargs": sentinel_kwargs(),
    }
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        **_sentinel_options,
        "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3600),
        # Connections to the primary: a hung one is given up and the Sentinels asked again.
        "socket_connect_timeout": 2,
        "socket_timeout": 10,
    }
    CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = _sentinel_options
    CELERY_REDIS_SOCKET_CONNECT_TIMEOUT = 2
CELERY_RESULT_EXPIRES = timedelta(hours=1)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_TRACK_STARTED = True
CELERY_BEAT_SCHEDULE = {
    "record-heartbeat": {
        "task": "core.tasks.record_heartbeat",
        "schedule": float(env_int("HEARTBEAT_SECONDS", 5)),
    },
}

LOG_DIR = env("LOG_DIR")
LOG_HANDLERS = ["console"]
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s pid=%(process)d %(message)s"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
    },
    "root": {"handlers": LOG_HANDLERS, "level": "INFO"},
}
if LOG_DIR:
    # WatchedFileHandler reopens the file after logrotate renames it; no signal needed.
    LOGGING["handlers"]["file"] = {
        "class": "logging.handlers.WatchedFileHandler",
        "filename": os.path.join(LOG_DIR, "app.log"),
        "formatter": "plain",
        "delay": True,
    }
    LOG_HANDLERS.append("file")
