"""Template filters of the history pages: instants shown in the billing
time zone, and the names of month-over-month causes."""
from django import template

from core.periods import BILLING_TZ
from invoices.templatetags.billing import change

from ..console.insight import CAUSE_LABELS

register = template.Library()


@register.filter
def billing_date(value) -> str:
    """An instant as its UTC+8 day: ``2026-11-05``."""
    if not value:
        return ""
    return f"{value.astimezone(BILLING_TZ):%Y-%m-%d}"


@register.filter
def billing_time(value) -> str:
    """An instant in UTC+8: ``2026-11-05 10:00``."""
    if not value:
        return ""
    return f"{value.astimezone(BILLING_TZ):%Y-%m-%d %H:%M}"


@register.filter
def cause_label(kind: str) -> str:
    """The name of a month-over-month cause kind (``volume`` → "Volume")."""
    return CAUSE_LABELS.get(kind, kind)


@register.filter
def cause_quantity(cause) -> str:
    """A cause's change in units, signed: emails whole (``+38,000``), other
    items to 0.01 (``-196.33`` GB); the words and the table share it."""
    return change(cause.quantity, "" if cause.service == "email" else 2)
