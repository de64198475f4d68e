"""``python manage.py settle [--period YYYY-MM] [--account CODE]`` (interfaces.md)."""
from __future__ import annotations

import sys

from django.core.management.base import BaseCommand, CommandError
from django.db.models import F
from django.utils import timezone

from accounts.models import Account
from aurora_billing.settlement import SettlementReport, accounts_due, accounts_settle
from core.periods import Period, PeriodError
from invoices.models import Bill
from usage.models import DailyUsage

BATCH_SIZE = 200


class Command(BaseCommand):
    help = ("Settle a period (default: every ended period whose bill time has passed and is not "
            "settled yet, oldest first: catch-up after downtime).")

    def add_arguments(self, parser):
        parser.add_argument("--period", help="YYYY-MM; refused before its bill time")
        parser.add_argument("--account", help="account code (default: every account)")
        parser.add_argument("--batch-size", type=int, default=BATCH_SIZE,
                            help=f"accounts per transaction (default {BATCH_SIZE})")

    def handle(self, *args, period=None, account=None, batch_size=BATCH_SIZE, **options):
        now = timezone.now()
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1")
        target = None
        if period is not None:
            try:
                target = Period.parse(period)
            except PeriodError as exc:
                raise CommandError(f"--period: {exc}") from None
            if not target.is_billable(now):
                raise CommandError(f"--period {target} cannot be settled before its bill time, "
                                   f"{target.bill_time_label()}")
        if account is not None:
            ids = list(Account.objects.filter(code=account).values_list("pk", flat=True))
            if not ids:
                raise CommandError(f"--account: no account with code {account!r}")
        elif target is not None:
            with_usage = set(DailyUsage.objects.filter(day__lt=target.end_day, quantity__gt=F("billed_quantity"))
                             .order_by().values_list("account_id", flat=True).distinct())
            with_bill = set(Bill.objects.filter(period=str(target)).values_list("account_id", flat=True))
            ids = sorted(with_usage | with_bill)
        else:
            ids = accounts_due(now=now)

        report = SettlementReport()
        progress = sys.stderr.isatty() and len(ids) > batch_size
        for start in range(0, len(ids), batch_size):
            report.merge(accounts_settle(account_ids=ids[start:start + batch_size], now=now, period=target))
            if progress:
                done = min(start + batch_size, len(ids))
                sys.stderr.write(f"\rsettling: {done}/{len(ids)} accounts, {len(report.settled)} bills")
                sys.stderr.flush()
        if progress:
            sys.stderr.write("\n")
        for error in report.errors:
            self.stderr.write(f"not settled: {error}")
        self.stdout.write(f"Settled {target or 'every due period'}: {report.summary()}")
        if report.errors:
            raise CommandError(f"{len(report.errors)} account(s) left unsettled; see above")
