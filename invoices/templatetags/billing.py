"""Template filters for money and quantities (the one place they are formatted)."""
from decimal import ROUND_HALF_UP, Decimal

from django import template
from django.utils.html import format_html

from core.money import format_quantity, round_money
from core.periods import BILLING_TZ
from usage.catalog import CATALOG
from usage.models import ServiceCode, service_item_label, unit_label

from ..models import STATUS_LABELS

register = template.Library()


@register.filter
def money(value, currency: str = "") -> str:
    """``1234.5`` → ``1,234.50`` (with ``USD`` appended when given)."""
    if value is None or value == "":
        return ""
    amount = round_money(Decimal(value))
    text = f"{amount if amount else abs(amount):,.2f}"  # -0.004 rounds to 0.00, not -0.00
    return f"{text} {currency}" if currency else text


@register.filter
def money_change(value) -> str:
    """A signed amount: ``41.2`` → ``+41.20``, ``-3`` → ``-3.00``, ``0`` → ``0.00``."""
    if value is None or value == "":
        return ""
    text = money(value)
    return f"+{text}" if round_money(Decimal(value)) > 0 else text


@register.filter
def quantity(value) -> str:
    """``20.500000`` → ``20.5``; ``78000`` → ``78,000``."""
    if value is None or value == "":
        return ""
    number = Decimal(value)
    plain = format_quantity(number if number else abs(number))  # no "-0"
    sign, plain = ("-", plain[1:]) if plain.startswith("-") else ("", plain)
    whole, _, frac = plain.partition(".")
    whole = f"{sign}{int(whole):,}"
    return f"{whole}.{frac}" if frac else whole


@register.filter
def change(value, places="") -> str:
    """A signed change in units: ``38000`` → ``+38,000``, ``-0.5`` → ``-0.5``;
    with ``places``, rounded half up to that many decimals first (for text:
    ``-196.32935`` GB → ``-196.33``)."""
    if value is None or value == "":
        return ""
    value = Decimal(value)
    if places != "":
        value = value.quantize(Decimal(1).scaleb(-int(places)), rounding=ROUND_HALF_UP)
    sign = "+" if value > 0 else "-" if value < 0 else ""
    return sign + quantity(abs(value))


@register.filter
def status_label(value) -> str:
    """A line status (``Paid``, ``Overdrawn``, ``Pending``) in the active
    language; the stored value stays English (the CSS class, the CSV)."""
    return str(STATUS_LABELS.get(str(value), value))


@register.filter
def service_name(item) -> str:
    """A ServiceItem's name in the active language (usage.models.service_item_label)."""
    return service_item_label(code=item.code, name=item.name)


@register.filter
def service_code_name(code: str) -> str:
    """A service item's catalog name from its code (``data_flow`` → Data Flow), in the active language."""
    try:
        return str(ServiceCode(code).label)
    except ValueError:
        return code


@register.filter
def unit_name(unit: str) -> str:
    """A catalog unit (``email``, ``IP-month``) in the active language, singular."""
    return unit_label(unit=unit, quantity=1)


@register.filter
def service_unit(code: str, quantity=2) -> str:
    """The catalog unit of a service item by code, in the active language,
    singular for a quantity of (minus) one: ``data_flow`` → ``GB``,
    ``data_masking`` → ``requests``."""
    unit = next((u for c, _, u, _ in CATALOG if c == code), "")
    if not unit:
        return ""
    return unit_label(unit=unit, quantity=abs(Decimal(quantity or 0)))


@register.filter
def utc8(value):
    """An instant as the console shows every time: ``2026-10-05 10:00 UTC+8``
    in a ``<time>`` element; static/js/localtime.js adds the viewer's own
    time beside it when their time zone differs."""
    if not value:
        return ""
    local = value.astimezone(BILLING_TZ)
    return format_html('<time datetime="{}" data-utc8>{} UTC+8</time>', value.isoformat(),
                       local.strftime("%Y-%m-%d %H:%M"))
