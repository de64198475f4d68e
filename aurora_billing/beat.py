"""The beat schedule, kept in code and synced into django-celery-beat's
tables (``python manage.py sync_beat_schedule``, run on every release).

Times are in the billing time zone, Asia/Shanghai (UTC+8, no daylight
saving):

- settlement, daily at 15:00: cron ``0 15 * * *``. It acts only on due,
  unsettled periods, so the run on the 1st of the month (bill time) and any
  catch-up after downtime are the same code; the other days find nothing
  due unless late usage or a missed month waits.
- statements, daily at 10:00: cron ``0 10 * * *``. It sends only what is due
  (from the 5th, 10:00) and not sent yet.
- alerts, hourly at minute 20: cron ``20 * * * *``. It evaluates every
  account's alerts (each crossing raised once) and queues again the unsent
  emails of active alerts.

Every task is idempotent, so a duplicated tick is harmless.
"""
from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction

from core.periods import BILLING_TZ

# PeriodicTask rows whose name starts with this are managed here; a row of
# that prefix that is no longer in SCHEDULE is disabled by the sync.
NAME_PREFIX = "aurora: "


@dataclass(frozen=True)
class Entry:
    name: str
    task: str
    minute: str
    hour: str
    description: str
    day_of_month: str = "*"
    month_of_year: str = "*"
    day_of_week: str = "*"

    @property
    def cron(self) -> str:
        return f"{self.minute} {self.hour} {self.day_of_month} {self.month_of_year} {self.day_of_week}"


SCHEDULE = [
    # 0 15 * * *  (Asia/Shanghai): settlement of due, unsettled periods
    Entry(name=f"{NAME_PREFIX}settlement", task="aurora_billing.tasks.settlement_run_due",
          minute="0", hour="15", description="Settle every due, unsettled period (daily 15:00 UTC+8)."),
    # 0 10 * * *  (Asia/Shanghai): statements due from the 5th and not sent yet
    Entry(name=f"{NAME_PREFIX}statements", task="invoices.tasks.statements_send_due",
          minute="0", hour="10", description="Email the statements that are due (daily 10:00 UTC+8)."),
    # 20 * * * *  (Asia/Shanghai): alerts of every account, unsent alert emails again
    Entry(name=f"{NAME_PREFIX}alerts", task="payments.tasks.alerts_evaluate_due",
          minute="20", hour="*", description="Evaluate every account's alerts and send them once (hourly at :20)."),
]


@dataclass
class SyncResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    disabled: int = 0

    def summary(self) -> str:
        return (f"{self.created} created, {self.updated} updated, {self.unchanged} unchanged, "
                f"{self.disabled} disabled")


def beat_schedule_sync() -> SyncResult:
    """Make django-celery-beat's tables match ``SCHEDULE``. Idempotent."""
    from django_celery_beat.models import CrontabSchedule, PeriodicTask, PeriodicTasks

    result = SyncResult()
    timezone = str(BILLING_TZ)
    with transaction.atomic():
        for entry in SCHEDULE:
            crontab, _ = CrontabSchedule.objects.get_or_create(
                minute=entry.minute, hour=entry.hour, day_of_month=entry.day_of_month,
                month_of_year=entry.month_of_year, day_of_week=entry.day_of_week, timezone=timezone,
            )
            wanted = {"task": entry.task, "crontab": crontab, "interval": None, "solar": None, "clocked": None,
                      "enabled": True, "one_off": False, "description": entry.description}
            task = PeriodicTask.objects.filter(name=entry.name).first()
            if task is None:
                PeriodicTask.objects.create(name=entry.name, args="[]", kwargs="{}", **wanted)
                result.created += 1
                continue
            changed = [k for k, v in wanted.items() if getattr(task, k) != v]
            if changed:
                for key in changed:
                    setattr(task, key, wanted[key])
                task.save()
                result.updated += 1
            else:
                result.unchanged += 1
        stale = (PeriodicTask.objects.filter(name__startswith=NAME_PREFIX, enabled=True)
                 .exclude(name__in=[e.name for e in SCHEDULE]))
        for task in stale:
            task.enabled = False
            task.save()
            result.disabled += 1
        if result.created or result.updated or result.disabled:
            PeriodicTasks.update_changed()
    return result
