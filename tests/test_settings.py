"""Settings come from the environment, with safe local defaults."""
import os
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_manage(tmp_path, *args, **env):
    base = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "VAR_DIR": str(tmp_path / "var")}
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env={**base, **env},
                          capture_output=True, text=True, timeout=120)


def test_check_deploy_is_clean_for_production_settings(tmp_path):
    result = run_manage(
        tmp_path, "check", "--deploy", "--fail-level", "WARNING",
        DEBUG="0", SECRET_KEY=secrets.token_urlsafe(50), ALLOWED_HOSTS="billing.example.com",
        DATABASE_URL="postgres://aurora:secret@db.internal:5432/aurora", REDIS_URL="redis://cache.internal:6379/0",
        EMAIL_URL="smtp+tls://mailer:secret@smtp.example.com:587", AWS_STORAGE_BUCKET_NAME="aurora-private",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_secret_key_is_required_when_debug_is_off(tmp_path):
    result = run_manage(tmp_path, "check", DEBUG="0")
    assert result.returncode != 0
    assert "SECRET_KEY must be set when DEBUG is off" in result.stderr


def test_local_defaults_need_no_environment(tmp_path):
    result = run_manage(tmp_path, "shell", "-c", (
        "from django.conf import settings as s;"
        "print(s.DATABASES['default']['ENGINE'], s.STORAGES['default']['BACKEND'], s.EMAIL_BACKEND,"
        " s.CELERY_TASK_ALWAYS_EAGER, s.TIME_ZONE, s.USE_TZ)"
    ), DEBUG="1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-6:] == [
        "django.db.backends.sqlite3", "django.core.files.storage.FileSystemStorage",
        "django.core.mail.backends.console.EmailBackend", "True", "UTC", "True"]


def test_production_services_come_from_the_environment(tmp_path):
    result = run_manage(tmp_path, "shell", "-c", (
        "from django.conf import settings as s;"
        "print(s.DATABASES['default']['ENGINE'], s.STORAGES['default']['BACKEND'], s.EMAIL_BACKEND,"
        " s.CELERY_BROKER_URL, s.CELERY_TASK_ALWAYS_EAGER)"
    ), DEBUG="0", SECRET_KEY=secrets.token_urlsafe(50), DATABASE_URL="postgres://a:b@db:5432/aurora",
        REDIS_URL="redis://cache:6379/0", EMAIL_URL="smtp+tls://u:p@smtp.example.com:587",
        AWS_STORAGE_BUCKET_NAME="aurora-private")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-5:] == [
        "django.db.backends.postgresql", "storages.backends.s3.S3Storage",
        "django.core.mail.backends.smtp.EmailBackend", "redis://cache:6379/0", "False"]


def test_log_format_json_writes_one_object_per_line(tmp_path):
    import json

    result = run_manage(tmp_path, "shell", "-c",
                        "import logging; logging.getLogger('aurora.settlement').info('settled account=%s', 'acme')",
                        DEBUG="1", LOG_FORMAT="json")
    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stderr.splitlines() if line.startswith("{"))
    record = json.loads(line)
    assert record["logger"] == "aurora.settlement" and record["level"] == "INFO"
    assert record["message"] == "settled account=acme"


def test_wsgi_freezes_the_start_up_heap():
    """aurora_billing/wsgi.py freezes what is alive after start-up, so full
    collections do not rescan it on every worker (docs/history.md)."""
    import gc

    import aurora_billing.wsgi as wsgi

    try:
        assert callable(wsgi.application)
        assert wsgi.heap_freeze() > 10_000
    finally:
        gc.unfreeze()
