"""What every benchmark needs: its own PostgreSQL database and Django set up on it."""
from __future__ import annotations

import os


def database_url(name: str) -> str:
    """``DATABASE_URL`` (default: local PostgreSQL) with the database ``name``."""
    base = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/aurora_bench")
    return base.rsplit("/", 1)[0] + "/" + name


def recreate_database(url: str) -> None:
    """Drop and create the database of ``url`` (connections to it are ended)."""
    import psycopg

    base, name = url.rsplit("/", 1)
    with psycopg.connect(base + "/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def setup_django(url: str) -> None:
    """Django on ``url`` with production-like settings for a benchmark: tasks
    in-process, quiet logs, no HTTPS redirect, no collected static files."""
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("SECRET_KEY", "benchmark-only")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "aurora_billing.settings")
    os.environ["CELERY_TASK_ALWAYS_EAGER"] = "1"
    os.environ["LOG_LEVEL"] = "WARNING"
    os.environ["SECURE_SSL_REDIRECT"] = "0"
    os.environ["STATIC_MANIFEST"] = "0"
    import django

    django.setup()
