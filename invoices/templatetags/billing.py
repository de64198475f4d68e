"""Template filters for money and quantities (the one place they are formatted)."""
from decimal import Decimal

from django import template

from core.money import format_quantity, round_money

register = template.Library()


@register.filter
def money(value, currency: str = "") -> str:
    """``1234.5`` → ``1,234.50`` (with ``USD`` appended when given)."""
    if value is None or value == "":
        return ""
    text = f"{round_money(Decimal(value)):,.2f}"
    return f"{text} {currency}" if currency else text


@register.filter
def quantity(value) -> str:
    """``20.500000`` → ``20.5``; ``78000`` → ``78,000``."""
    if value is None or value == "":
        return ""
    plain = format_quantity(Decimal(value))
    whole, _, frac = plain.partition(".")
    whole = f"{int(whole):,}"
    return f"{whole}.{frac}" if frac else whole
