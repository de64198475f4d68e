"""Shared fixtures. Services (PostgreSQL, Redis, Chromium) may be missing on a
developer machine, where the tests that need them skip; under CI=true a
missing service fails the run instead."""
from __future__ import annotations

import datetime as dt
import os
import threading
import traceback
from decimal import Decimal

import pytest
from django.db import connection

from accounts.models import Account, Membership, User
from usage.models import DailyUsage, EmailPack, Price, Region

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
PASSWORD = "demo-pass-123"


def missing_service(reason: str) -> None:
    """Skip locally; fail under CI, where every service must be present."""
    if IN_CI:
        pytest.fail(f"required service missing under CI=true: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def _catalog(request):
    """The five service items are seeded by a data migration; a transactional
    test's flush deletes them, so every database test makes sure they exist."""
    marker = request.node.get_closest_marker("django_db")
    wants_db = marker is not None or {"db", "transactional_db", "live_server"} & set(request.fixturenames)
    if not wants_db:
        return
    transactional = "transactional_db" in request.fixturenames or "live_server" in request.fixturenames or (
        marker is not None and marker.kwargs.get("transaction", False))
    request.getfixturevalue("transactional_db" if transactional else "db")
    from usage.catalog import catalog_ensure

    catalog_ensure()


@pytest.fixture(autouse=True)
def _clear_cache():
    """Each test starts with an empty cache (throttling counters, locks)."""
    from django.core.cache import cache

    cache.clear()
    yield


@pytest.fixture
def postgres(db):
    if connection.vendor != "postgresql":
        missing_service("needs PostgreSQL (set DATABASE_URL=postgres://…)")
    return connection


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


@pytest.fixture
def region_sg(db):
    return Region.objects.get_or_create(code="sg", defaults={"name": "Singapore"})[0]


@pytest.fixture
def make_account(db):
    def make(code="acme", name="Acme Ltd", currency="USD", users=(("owner@acme.example", "owner"),)):
        account = Account.objects.create(code=code, name=name, currency=currency)
        for email, role in users:
            user = User.objects.filter(email=email).first() or User.objects.create_user(email, PASSWORD)
            Membership.objects.create(user=user, account=account, role=role)
        return account

    return make


@pytest.fixture
def acme(make_account):
    return make_account()


@pytest.fixture
def owner(acme):
    """acme's owner, signed in, with billing-rules §8's October settled and
    Overdrawn (``tests.test_payment_support.overdrawn``): where the payment
    tests start."""
    from django.test import Client

    from tests.test_payment_support import overdrawn  # imports this module: not at the top

    overdrawn(acme)
    client = Client()
    client.force_login(User.objects.get(email="owner@acme.example"))
    return client


def add_price(service, region, unit_price, effective_from="2026-01-01", currency="USD"):
    region_obj = Region.objects.get_or_create(code=region, defaults={"name": region.upper()})[0]
    return Price.objects.create(service_id=service, region=region_obj, unit_price=Decimal(unit_price),
                                currency=currency, effective_from=dt.date.fromisoformat(effective_from))


def add_usage(account, region, service, day, quantity, result=None):
    if result is None:
        result = "delivered" if service == "email" else ""
    region_obj = Region.objects.get_or_create(code=region, defaults={"name": region.upper()})[0]
    row, created = DailyUsage.objects.get_or_create(
        account=account, region=region_obj, service_id=service, result=result,
        day=dt.date.fromisoformat(day), defaults={"quantity": Decimal(quantity)},
    )
    if not created:
        row.quantity += Decimal(quantity)
        row.save(update_fields=["quantity"])
    return row


def add_pack(account, region, reference, quantity, valid_from, valid_until):
    region_obj = Region.objects.get_or_create(code=region, defaults={"name": region.upper()})[0]
    return EmailPack.objects.create(account=account, region=region_obj, reference=reference, quantity=quantity,
                                    valid_from=dt.date.fromisoformat(valid_from),
                                    valid_until=dt.date.fromisoformat(valid_until))


def worked_example_prices() -> None:
    """billing-rules §8 prices in sg: email 0.000300, data flow 0.30."""
    add_price("email", "sg", "0.000300")
    add_price("data_flow", "sg", "0.30")


def worked_example_seed(account) -> None:
    """billing-rules §8 for ``account``, before settlement: funds 5.00, packs
    A and B, 78,000 emails and 20 GB in sg in 2026-10 (prices not included)."""
    from payments.services import topup_record

    topup_record(account=account, amount=Decimal("5.00"), reference="t1", at=utc(2026, 9, 1))
    add_pack(account, "sg", "A", 10_000, "2026-09-01", "2026-10-16")
    add_pack(account, "sg", "B", 50_000, "2026-10-10", "2028-10-10")
    add_usage(account, "sg", "email", "2026-10-05", 8_000)
    add_usage(account, "sg", "email", "2026-10-12", 30_000)
    add_usage(account, "sg", "email", "2026-10-20", 40_000)
    add_usage(account, "sg", "data_flow", "2026-10-15", "20")


@pytest.fixture
def worked_example(acme):
    """billing-rules §8 before settlement, prices included."""
    worked_example_prices()
    worked_example_seed(acme)
    return acme
