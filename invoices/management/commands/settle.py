from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from accounts.models import Account
from aurora_billing.periods import Period, PeriodError
from aurora_billing.settlement import (
    PeriodNotDue,
    SettlementReport,
    accounts_with_due_usage,
    settle_account,
)


class Command(BaseCommand):
    help = ("Settle a period (default: every ended period whose bill time has passed and is not "
            "settled yet, oldest first).")

    def add_arguments(self, parser):
        parser.add_argument("--period", help="YYYY-MM; refused before its bill time")
        parser.add_argument("--account", help="account code (default: every account)")

    def handle(self, *args, period=None, account=None, **options):
        now = timezone.now()
        target = None
        if period:
            try:
                target = Period.parse(period)
            except PeriodError as exc:
                raise CommandError(f"--period: {exc}") from None
            if not target.is_billable(now):
                raise CommandError(
                    f"--period {target}: its bill time is {target.bill_time_label()}; "
                    "it cannot be settled before then"
                )
        if account:
            accounts = list(Account.objects.filter(code=account))
            if not accounts:
                raise CommandError(f"--account: no account with code {account!r}")
        elif target:
            accounts = list(Account.objects.order_by("code"))
        else:
            accounts = list(Account.objects.filter(pk__in=accounts_with_due_usage(now=now)).order_by("code"))
        report = SettlementReport()
        for acc in accounts:
            try:
                report.merge(settle_account(account=acc, now=now, period=target))
            except PeriodNotDue as exc:
                raise CommandError(str(exc)) from None
        for err in report.errors:
            self.stderr.write(f"error: {err}")
        self.stdout.write(f"Settled: {report.summary()}")
        if report.errors:
            raise CommandError(f"{len(report.errors)} account(s) left unsettled; see the errors above")
