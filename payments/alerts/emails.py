"""The alert emails: one per (alert, recipient), sent once, in the
recipient's language."""
from __future__ import annotations

import datetime as dt
import logging
import smtplib

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.db.models import QuerySet
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import translation

from ..models import AlertEmail, AlertOptOut, AlertState
from .wording import alert_text

log = logging.getLogger("aurora.alerts")

# Attempts after which an unsent email is no longer retried by beat.
MAX_ATTEMPTS = 10
CLEARED_BEFORE_SENT = "not sent: the alert cleared before its email went out"
OPTED_OUT = "not sent: the recipient opted out"


class AlertEmailError(Exception):
    """The outgoing mail transport failed; the email stays unsent."""


def recipient_language(user) -> str:
    """The recipient's saved console language, else the site's default."""
    return getattr(user, "language", "") or settings.LANGUAGE_CODE


def alert_email_message(*, row: AlertEmail) -> EmailMultiAlternatives:
    """The email of ``row`` (plain text and HTML), in its recipient's language."""
    alert = row.alert
    with translation.override(recipient_language(row.user)):
        text = alert_text(alert)
        context = {"alert": alert, "text": text, "account": alert.account, "site_url": settings.SITE_URL,
                   "action_url": f"{settings.SITE_URL}{text.action_path}",
                   "alerts_url": f"{settings.SITE_URL}{reverse('billing:alerts')}"}
        subject = " ".join(render_to_string("email/alerts/alert_subject.txt", context).split())
        message = EmailMultiAlternatives(
            subject=subject, body=render_to_string("email/alerts/alert.txt", context),
            from_email=settings.DEFAULT_FROM_EMAIL, to=[row.email],
            headers={"X-Aurora-Alert": f"{alert.kind}/{alert.pk}"})
        message.attach_alternative(render_to_string("email/alerts/alert.html", context), "text/html")
    return message


def alert_email_send(*, alert_email_id: int, now: dt.datetime) -> bool:
    """Send one alert email once; True when it was sent now. The row stays
    locked while sending, so a second worker waits and then finds it sent.
    Not sent (and not retried) when the alert cleared or the recipient
    opted out meanwhile. A transport failure is recorded and raised as
    AlertEmailError."""
    error: Exception | None = None
    with transaction.atomic():
        row = (AlertEmail.objects.select_for_update(of=("self",)).select_related("alert__account", "user")
               .get(pk=alert_email_id))
        if row.sent_at is not None:
            return False
        skip = ""
        if row.alert.state != AlertState.ACTIVE:
            skip = CLEARED_BEFORE_SENT
        elif not row.user.is_active or AlertOptOut.objects.filter(account=row.alert.account, user=row.user).exists():
            skip = OPTED_OUT
        if skip:
            if row.last_error != skip:
                row.last_error = skip
                row.save(update_fields=["last_error"])
            return False
        message = alert_email_message(row=row)
        row.attempts += 1
        try:
            message.send(fail_silently=False)
        except (smtplib.SMTPException, OSError) as exc:
            error = exc
            row.last_error = f"{now.isoformat()}: {type(exc).__name__}: {exc}"[:2000]
        else:
            row.sent_at = now
            row.last_error = ""
        row.save(update_fields=["attempts", "sent_at", "last_error"])
    if error is not None:
        log.warning("alert email %s to %s failed (attempt %s): %s", row.pk, row.email, row.attempts, error)
        raise AlertEmailError(str(error)) from error
    log.info("alert %s (%s) emailed to %s", row.alert_id, row.alert.kind, row.email)
    return True


def alert_emails_unsent(*, account_ids: list[int] | None = None) -> QuerySet[AlertEmail]:
    """Emails still to send: of active alerts, not sent, not skipped, under
    MAX_ATTEMPTS (beat's catch-up of emails whose task was lost)."""
    rows = AlertEmail.objects.filter(sent_at__isnull=True, alert__state=AlertState.ACTIVE, attempts__lt=MAX_ATTEMPTS)
    rows = rows.exclude(last_error__in=[OPTED_OUT, CLEARED_BEFORE_SENT])
    if account_ids is not None:
        rows = rows.filter(alert__account_id__in=account_ids)
    return rows.select_related("alert__account").order_by("alert_id", "email")
