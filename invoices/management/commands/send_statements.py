"""``send_statements [--period YYYY-MM]`` (interfaces.md): email the statements
that are due and not sent yet, now, in this process."""
from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from core.periods import Period, PeriodError
from invoices.models import Bill
from invoices.statements import StatementEmailError, statement_email_send, statement_issue, statements_due


class Command(BaseCommand):
    help = ("Email the statements whose email time (the 5th, 10:00 UTC+8) has passed and that were not "
            "sent yet, to each account's owners and accountants. Each statement is emailed once.")

    def add_arguments(self, parser):
        parser.add_argument("--period", help="YYYY-MM: only this period (refused before its email time)")

    def handle(self, *args, period=None, **options):
        now = timezone.now()
        target = None
        if period:
            try:
                target = Period.parse(period)
            except PeriodError as exc:
                raise CommandError(f"--period: {exc}") from None
            if not target.is_statement_due(now):
                raise CommandError(f"--period {target}: statements are emailed from "
                                   f"{target.statement_time_label()}, not before")
        bills = list(statements_due(now=now, period=target))
        sent = skipped = failed = 0
        for i, bill in enumerate(bills, 1):
            statement = statement_issue(bill=bill, now=now)
            label = f"{bill.account.code} {bill.period} {statement.number}"
            try:
                outcome = statement_email_send(statement=statement, now=now)
            except StatementEmailError as exc:
                failed += 1
                self.stderr.write(f"error: {label}: {exc}")
                continue
            if outcome.sent:
                sent += 1
                if options["verbosity"] > 1:
                    self.stdout.write(f"sent {label} to {', '.join(outcome.recipients)}")
            else:
                skipped += 1
                self.stderr.write(f"skipped {label}: {outcome.reason}")
            if self.stderr.isatty():
                self.stderr.write(f"\r{i} / {len(bills)}", ending="")
        summary = f"Statements: {sent} emailed, {skipped} skipped, {failed} failed"
        if target:
            before = Bill.objects.filter(period=str(target), statement__emailed_at__isnull=False).count() - sent
            summary += f", {before} sent before"
        self.stdout.write(summary)
        if failed:
            raise CommandError(f"{failed} statement(s) not emailed; run again to retry")
