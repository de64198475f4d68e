"""The beat schedule in code, its sync into django-celery-beat, and the
settlement tasks (eager here; tests/test_worker_e2e.py runs a real worker)."""
import datetime as dt
from io import StringIO

import pytest
from django.core.management import call_command
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from aurora_billing.beat import SCHEDULE, beat_schedule_sync
from aurora_billing.celery import app
from aurora_billing.tasks import settlement_run_due, settlement_settle_batch
from invoices.models import Bill, BillLine
from payments.models import LedgerEntry
from tests.support import add_price, add_usage, utc

pytestmark = pytest.mark.django_db

SHANGHAI = "Asia/Shanghai"


def next_run(task: PeriodicTask, last_run_at: dt.datetime) -> dt.datetime:
    start, delta, _ = task.schedule.remaining_delta(last_run_at)
    return (start + delta).astimezone(dt.UTC)


def test_sync_writes_the_schedule_once():
    out = StringIO()
    call_command("sync_beat_schedule", stdout=out)
    assert out.getvalue().splitlines() == [
        "aurora: settlement: aurora_billing.tasks.settlement_run_due at cron '0 15 * * *' Asia/Shanghai",
        "aurora: statements: invoices.tasks.statements_send_due at cron '0 10 * * *' Asia/Shanghai",
        "aurora: alerts: payments.tasks.alerts_evaluate_due at cron '20 * * * *' Asia/Shanghai",
        "Beat schedule synced: 3 created, 0 updated, 0 unchanged, 0 disabled",
    ]
    rows = {t.name: (t.task, t.crontab.minute, t.crontab.hour, t.crontab.day_of_month, t.crontab.month_of_year,
                     t.crontab.day_of_week, str(t.crontab.timezone), t.enabled)
            for t in PeriodicTask.objects.select_related("crontab")}
    assert rows == {
        "aurora: settlement": ("aurora_billing.tasks.settlement_run_due", "0", "15", "*", "*", "*", SHANGHAI, True),
        "aurora: statements": ("invoices.tasks.statements_send_due", "0", "10", "*", "*", "*", SHANGHAI, True),
        "aurora: alerts": ("payments.tasks.alerts_evaluate_due", "20", "*", "*", "*", "*", SHANGHAI, True),
    }
    assert beat_schedule_sync().summary() == "0 created, 0 updated, 3 unchanged, 0 disabled"
    assert PeriodicTask.objects.count() == 3 and CrontabSchedule.objects.count() == 3


def test_sync_repairs_edits_and_disables_what_left_the_code():
    beat_schedule_sync()
    settlement = PeriodicTask.objects.get(name="aurora: settlement")
    settlement.crontab = CrontabSchedule.objects.create(minute="30", hour="3", timezone="UTC")
    settlement.enabled = False
    settlement.save()
    PeriodicTask.objects.create(name="aurora: retired job", task="aurora_billing.tasks.gone",
                                crontab=settlement.crontab)
    PeriodicTask.objects.create(name="someone else's job", task="x.y", crontab=settlement.crontab)
    assert beat_schedule_sync().summary() == "0 created, 1 updated, 2 unchanged, 1 disabled"
    settlement.refresh_from_db()
    assert (settlement.crontab.hour, str(settlement.crontab.timezone), settlement.enabled) == ("15", SHANGHAI, True)
    assert not PeriodicTask.objects.get(name="aurora: retired job").enabled
    assert PeriodicTask.objects.get(name="someone else's job").enabled


@pytest.mark.parametrize(("name", "last_run_at", "expected"), [
    # 14:00 UTC+8 on the 1st → 15:00 UTC+8 (07:00Z) the same day: bill time
    ("aurora: settlement", utc(2026, 11, 1, 6), utc(2026, 11, 1, 7)),
    # just ran at 15:00 UTC+8 → 15:00 UTC+8 the next day
    ("aurora: settlement", utc(2026, 11, 1, 7), utc(2026, 11, 2, 7)),
    # 23:30 UTC+8 on Dec 31 → Jan 1, 15:00 UTC+8
    ("aurora: settlement", utc(2026, 12, 31, 15, 30), utc(2027, 1, 1, 7)),
    # statements: 09:00 UTC+8 on the 5th → 10:00 UTC+8 (02:00Z)
    ("aurora: statements", utc(2026, 11, 5, 1), utc(2026, 11, 5, 2)),
    # alerts: 10:25 UTC+8 → 11:20 UTC+8 (03:20Z), hourly at minute 20
    ("aurora: alerts", utc(2026, 11, 5, 2, 25), utc(2026, 11, 5, 3, 20)),
])
def test_schedule_fires_in_shanghai_time(name, last_run_at, expected):
    beat_schedule_sync()
    assert next_run(PeriodicTask.objects.get(name=name), last_run_at) == expected


def test_every_scheduled_task_is_registered():
    app.loader.import_default_modules()
    assert [e.task for e in SCHEDULE if e.task not in app.tasks] == []
    assert app.tasks["aurora_billing.tasks.settlement_run_due"].acks_late
    assert app.tasks["aurora_billing.tasks.settlement_settle_batch"].acks_late


@pytest.fixture
def usage(make_account):
    add_price("email", "sg", "0.01")
    accounts = [make_account(code=f"acc-{i}", users=()) for i in range(5)]
    for account in accounts:
        add_usage(account, "sg", "email", "2026-10-10", 100)
    return accounts


def test_beat_task_before_bill_time_does_nothing(usage):
    assert settlement_run_due.delay(now="2026-11-01T14:59:59+08:00").get() == 0
    assert not Bill.objects.exists()


def test_beat_task_fans_out_batches_and_a_duplicated_tick_is_harmless(usage):
    assert settlement_run_due.delay(now="2026-11-01T15:00:00+08:00", batch_size=2).get() == 3
    state = (list(Bill.objects.order_by("pk").values_list("pk", "account__code", "period")),
             BillLine.objects.count(), LedgerEntry.objects.count())
    assert [code for _, code, _ in state[0]] == [f"acc-{i}" for i in range(5)]
    # The same tick again (duplicated delivery), and a batch replayed after a worker crash:
    assert settlement_run_due.delay(now="2026-11-01T15:00:00+08:00", batch_size=2).get() == 0
    replay = settlement_settle_batch.delay(account_ids=[a.pk for a in usage], now="2026-11-01T15:00:00+08:00",
                                           period="2026-10").get()
    assert replay == {"settled": 0, "already": 5, "empty": 0, "errors": []}
    assert (list(Bill.objects.order_by("pk").values_list("pk", "account__code", "period")),
            BillLine.objects.count(), LedgerEntry.objects.count()) == state


def test_batch_task_reports_errors(usage, make_account):
    stray = make_account(code="stray", users=())
    add_usage(stray, "mars", "email", "2026-10-10", 1)
    result = settlement_settle_batch.delay(account_ids=[stray.pk, usage[0].pk],
                                           now="2026-11-02T00:00:00+08:00").get()
    assert result == {"settled": 1, "already": 0, "empty": 0,
                      "errors": ["stray 2026-10: no USD price for email in region mars in effect on 2026-10-01"]}


def test_naive_now_is_refused():
    with pytest.raises(ValueError, match="no UTC offset"):
        settlement_run_due.delay(now="2026-11-01T15:00:00").get()
