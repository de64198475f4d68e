"""``send_alerts [--account CODE]`` (interfaces.md): evaluate alerts and send
each due one once, now, in this process; prints what it sent."""
from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from accounts.models import Account
from payments.alerts.emails import AlertEmailError, alert_email_send, alert_emails_unsent
from payments.alerts.services import alerts_evaluate


class Command(BaseCommand):
    help = ("Evaluate every account's alerts (funds, budget, Overdrawn periods, packs, awaited wire transfers) "
            "and email each alert raised, and each email not sent yet, once. Prints what it sent.")

    def add_arguments(self, parser):
        parser.add_argument("--account", help="account code: only this account")

    def handle(self, *args, account=None, **options):
        now = timezone.now()
        accounts = Account.objects.order_by("code")
        if account:
            accounts = accounts.filter(code=account)
            if not accounts.exists():
                raise CommandError(f"--account: no account with code {account!r}")
        raised = cleared_before = 0
        ids = []
        for acc in accounts:
            ids.append(acc.pk)
            raised += len(alerts_evaluate(account=acc, now=now))
        sent = failed = 0
        for row in alert_emails_unsent(account_ids=ids):
            label = f"{row.alert.account.code} {row.alert.kind}{' ' + row.alert.subject if row.alert.subject else ''}"
            try:
                if alert_email_send(alert_email_id=row.pk, now=now):
                    sent += 1
                    self.stdout.write(f"sent {label} (crossing {row.alert.crossing}) to {row.email}")
                else:
                    cleared_before += 1
            except AlertEmailError as exc:
                failed += 1
                self.stderr.write(f"error: {label} to {row.email}: {exc}")
        self.stdout.write(f"Alerts: {raised} raised, {sent} emails sent, {cleared_before} not sent, "
                          f"{failed} failed ({len(ids)} accounts)")
        if failed:
            raise CommandError(f"{failed} alert email(s) not sent; run again to retry")
