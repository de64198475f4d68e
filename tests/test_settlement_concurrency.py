"""Two settlements of the same period at once, in two processes, on
PostgreSQL: exactly one bill per account, nothing applied twice."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from urllib.parse import quote

import pytest
from django.db import connection, transaction
from django.db.models import F

from accounts.models import Account
from invoices.models import Bill, BillLine, PackDeduction
from payments.models import LedgerEntry
from payments.selectors import funds_balances
from payments.services import topup_record
from tests.support import add_pack, add_price, add_usage, missing_service, utc
from usage.models import DailyUsage

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

ROOT = Path(__file__).resolve().parent.parent

# A child process: waits for the go file, then settles and prints its report.
CHILD = """
import json, sys, time
from pathlib import Path
import django
django.setup()
from core.periods import Period
from aurora_billing.settlement import accounts_settle
go, ids, mode = Path(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
while not go.exists():
    time.sleep(0.002)
now, period = Period(2026, 10).bill_time, Period(2026, 10)
settled = already = errors = 0
groups = [ids] if mode == "batch" else [[pk] for pk in reversed(ids)]
for group in groups:
    report = accounts_settle(account_ids=group, now=now, period=period)
    settled, already, errors = settled + len(report.settled), already + len(report.already), errors + len(report.errors)
print(json.dumps({"settled": settled, "already": already, "errors": errors}))
"""


def database_url_of_test_db() -> str:
    """DATABASE_URL of the database this test runs on (pytest-django's test database)."""
    s = connection.settings_dict
    auth = quote(s["USER"] or "", safe="") + (":" + quote(s["PASSWORD"], safe="") if s["PASSWORD"] else "")
    return f"postgres://{auth}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def start_child(go: Path, ids: list[int], mode: str) -> subprocess.Popen:
    env = {**os.environ, "DATABASE_URL": database_url_of_test_db(), "CELERY_TASK_ALWAYS_EAGER": "1",
           "LOG_LEVEL": "ERROR"}
    return subprocess.Popen([sys.executable, "-c", CHILD, str(go), json.dumps(ids), mode], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(child: subprocess.Popen) -> dict:
    try:
        out, err = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert child.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


@pytest.fixture
def month(make_account):
    if connection.vendor != "postgresql":
        missing_service("needs PostgreSQL (set DATABASE_URL=postgres://…)")
    add_price("email", "sg", "0.01")
    add_price("data_flow", "sg", "0.30")
    accounts = []
    for i in range(12):
        account = make_account(code=f"c{i:02d}", users=())
        add_pack(account, "sg", "p", 500, "2026-10-01", "2028-10-01")
        for day in ("2026-10-03", "2026-10-17", "2026-10-29"):
            add_usage(account, "sg", "email", day, 300 + i)
        add_usage(account, "sg", "data_flow", "2026-10-20", "1.5")
        topup_record(account=account, amount=Decimal("3.00"), reference="t", at=utc(2026, 9, 1))
        accounts.append(account)
    return accounts


def assert_settled_once(accounts):
    assert sorted(Bill.objects.values_list("account__code", "period")) == [(a.code, "2026-10") for a in accounts]
    for account in accounts:
        bill = Bill.objects.get(account=account)
        lines = list(bill.lines.order_by("position"))
        i = int(account.code[1:])
        emails = 3 * (300 + i)
        assert [(x.service_id, x.usage_quantity, x.deducted_quantity) for x in lines] == [
            ("email", Decimal(emails), Decimal(500)), ("data_flow", Decimal("1.5"), Decimal("0.0002") * emails)]
        assert lines[0].amount == Decimal(emails - 500) / 100
        settlement = LedgerEntry.objects.filter(account=account, kind="settlement")
        assert sum(e.amount for e in settlement) == -bill.funds_applied == -min(Decimal("3.00"), bill.total_amount)
        assert funds_balances(account_ids=[account.pk])[account.pk] == Decimal("3.00") - bill.funds_applied
    assert PackDeduction.objects.filter(quantity__gt=0).values("pack").distinct().count() == len(accounts)
    assert sum(PackDeduction.objects.values_list("quantity", flat=True)) == 500 * len(accounts)
    assert LedgerEntry.objects.filter(kind="settlement").count() == BillLine.objects.filter(paid__gt=0).count()
    assert not DailyUsage.objects.exclude(billed_quantity=F("quantity")).exists()


@pytest.mark.parametrize("second_mode", ["batch", "one_by_one"])
def test_two_processes_settle_the_same_period_once(month, tmp_path, second_mode):
    ids = [a.pk for a in month]
    go = tmp_path / "go"
    # Hold the first account's lock so both processes queue up behind it,
    # then release: they race for real.
    with transaction.atomic():
        Account.objects.select_for_update().get(pk=ids[0])
        children = [start_child(go, ids, "batch"), start_child(go, ids, second_mode)]
        go.touch()
        time.sleep(2.0)
    reports = [finish(child) for child in children]
    assert sum(r["settled"] for r in reports) == len(ids)
    assert sum(r["already"] for r in reports) == len(ids)
    assert sum(r["errors"] for r in reports) == 0
    assert_settled_once(month)
