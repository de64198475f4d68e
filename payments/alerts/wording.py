"""What an alert says, in the active language: one title, one sentence and
one action for each kind, shared by the console (strip, history) and the
emails, so the two never disagree."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.urls import reverse
from django.utils import formats
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from core.periods import BILLING_TZ, Period
from invoices.templatetags.billing import money, quantity

from ..models import Alert, AlertKind, BudgetBasis


@dataclass(frozen=True)
class AlertText:
    title: str
    message: str
    action_label: str
    # a path in the console (prefix SITE_URL for an email)
    action_path: str


def _month(period: Period) -> str:
    """``November 2026`` (``2026年11月`` in Chinese)."""
    return formats.date_format(period.first_day, "YEAR_MONTH_FORMAT")


def _instant(text: str) -> str:
    return f"{dt.datetime.fromisoformat(text).astimezone(BILLING_TZ):%Y-%m-%d %H:%M} UTC+8"


def alert_text(alert: Alert) -> AlertText:
    d = alert.detail
    cur = alert.currency
    if alert.kind == AlertKind.FUNDS_LOW:
        values = {"amount": money(alert.amount, cur), "threshold": money(alert.threshold, cur)}
        return AlertText(
            _("Funds below %(threshold)s") % values,
            _("The prepaid funds are %(amount)s, below the alert threshold of %(threshold)s. Top up so that "
              "the next settlement can pay the bill from the funds.") % values,
            _("Top up"), reverse("billing:topup"))
    if alert.kind == AlertKind.BUDGET:
        period = Period.parse(d["period"])
        values = {"period": _month(period), "amount": money(alert.amount, cur),
                  "threshold": money(alert.threshold, cur), "mtd": money(d.get("month_to_date"), cur)}
        if d.get("basis") == BudgetBasis.FORECAST:
            message = _("At the rate so far, %(period)s is forecast to end at %(amount)s (month to date "
                        "%(mtd)s), above the budget of %(threshold)s.") % values
        else:
            message = _("The month-to-date amount of %(period)s is %(amount)s, above the budget of "
                        "%(threshold)s.") % values
        return AlertText(_("Over budget in %(period)s") % values, message, _("View the month"),
                         f"{reverse('billing:summary')}?period={period}")
    if alert.kind == AlertKind.OVERDRAWN:
        values = {"period": _month(Period.parse(d["period"])), "amount": money(alert.amount, cur)}
        return AlertText(
            _("%(period)s settled Overdrawn") % values,
            _("%(period)s was settled with %(amount)s Overdrawn: the funds did not cover the whole bill. "
              "Repay the amount due.") % values,
            _("Repay"), reverse("billing:repay"))
    if alert.kind == AlertKind.PACK_LOW:
        values = {"reference": d["reference"], "region": d["region"], "remaining": quantity(d["remaining"]),
                  "quantity": quantity(d["quantity"]), "left": d["percent_left"], "percent": d["percent"]}
        return AlertText(
            _("Email pack %(reference)s running low") % values,
            _("Email pack %(reference)s (%(region)s) holds %(remaining)s of %(quantity)s emails (%(left)s%% "
              "left), below %(percent)s%%, as of the last settlement.") % values,
            _("View the packs"), reverse("billing:summary"))
    if alert.kind == AlertKind.PACK_EXPIRING:
        values = {"reference": d["reference"], "region": d["region"], "remaining": quantity(d["remaining"]),
                  "last_day": d["last_day"], "days": d["days_left"]}
        return AlertText(
            _("Email pack %(reference)s expiring") % values,
            ngettext("Email pack %(reference)s (%(region)s) is valid until %(last_day)s (UTC+8), %(days)s day "
                     "from today, and still holds %(remaining)s emails.",
                     "Email pack %(reference)s (%(region)s) is valid until %(last_day)s (UTC+8), %(days)s days "
                     "from today, and still holds %(remaining)s emails.", d["days_left"]) % values,
            _("View the packs"), reverse("billing:summary"))
    if alert.kind == AlertKind.WIRE_WAITING:
        values = {"reference": d["reference"], "amount": money(alert.amount, cur), "started": _instant(d["started"]),
                  "days": d["days"]}
        return AlertText(
            _("Wire transfer %(reference)s awaited") % values,
            ngettext("The repayment %(reference)s of %(amount)s by wire transfer was started on %(started)s and "
                     "its money has not arrived after %(days)s day. Send the transfer with the reference "
                     "%(reference)s, or choose another method.",
                     "The repayment %(reference)s of %(amount)s by wire transfer was started on %(started)s and "
                     "its money has not arrived after %(days)s days. Send the transfer with the reference "
                     "%(reference)s, or choose another method.", d["days"]) % values,
            _("View the payment"), reverse("billing:payment_detail", kwargs={"public_id": d["public_id"]}))
    raise ValueError(f"unknown alert kind {alert.kind!r}")
