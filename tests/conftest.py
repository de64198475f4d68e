"""Shared fixtures (helpers are in tests/support/). Services (PostgreSQL,
Redis, Chromium) may be missing on a developer machine, where the tests that
need them skip; under CI=true a missing service fails the run instead."""
from __future__ import annotations

import pytest
from django.db import connection

from accounts.models import Account, Membership, User
from tests.support import PASSWORD, missing_service, worked_example_prices, worked_example_seed
from usage.models import Region


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
    Overdrawn (``tests.support.payments.overdrawn``): where the payment
    tests start."""
    from django.test import Client

    from tests.support.payments import overdrawn

    overdrawn(acme)
    client = Client()
    client.force_login(User.objects.get(email="owner@acme.example"))
    return client


@pytest.fixture
def worked_example(acme):
    """billing-rules §8 before settlement, prices included."""
    worked_example_prices()
    worked_example_seed(acme)
    return acme
