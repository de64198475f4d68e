"""Helpers for tests that need services or threads: skip-or-fail when a
service is missing, run jobs concurrently, aware UTC instants."""
from __future__ import annotations

import datetime as dt
import os
import threading
import traceback

import pytest
from django.db import connection

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
PASSWORD = "demo-pass-123"


def missing_service(reason: str) -> None:
    """Skip locally; fail under CI, where every service must be present."""
    if IN_CI:
        pytest.fail(f"required service missing under CI=true: {reason}", pytrace=False)
    pytest.skip(reason)



def run_concurrently(*jobs) -> list:
    """Run each job in its own thread (and database connection), all
    released at the same instant; returns what each returned, or the
    exception it raised (with its traceback as a note)."""
    barrier = threading.Barrier(len(jobs))
    outcomes: list = [None] * len(jobs)

    def worker(index, job):
        try:
            barrier.wait(timeout=30)
            outcomes[index] = job()
        except Exception as exc:  # noqa: BLE001 - reported by the test
            exc.add_note("".join(traceback.format_exception(exc)))
            outcomes[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i, job)) for i, job in enumerate(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return outcomes



def failures(outcomes: list) -> list:
    """The exceptions among ``outcomes``, with their tracebacks, for an assertion message."""
    return [getattr(o, "__notes__", o) for o in outcomes if isinstance(o, Exception)]



def utc(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)
