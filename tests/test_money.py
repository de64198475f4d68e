"""The one rounding function and the decimal parsing rules (billing-rules §5)."""
from decimal import Decimal

import pytest

from core.money import format_money, format_quantity, round_money

# value → rounded half up to cents
ROUNDING = [
    ("5.40", "5.40"),
    ("0.005", "0.01"),  # half up, not half even
    ("0.015", "0.02"),
    ("0.025", "0.03"),
    ("2.675", "2.68"),  # binary floating point would give 2.67
    ("0.0049999", "0.00"),
    ("1.3200000", "1.32"),
    ("4.4", "4.40"),
    ("0", "0.00"),
    ("999999999999.994", "999999999999.99"),
    ("-0.005", "-0.01"),  # half away from zero
]


@pytest.mark.parametrize(("value", "rounded"), ROUNDING)
def test_round_money(value, rounded):
    result = round_money(Decimal(value))
    assert result == Decimal(rounded)
    assert str(result) == rounded  # exactly two places


# billable quantity × unit price → line amount
AMOUNTS = [
    ("18000", "0.000300", "5.40"),  # worked example, email
    ("4.4", "0.30", "1.32"),  # worked example, data flow
    ("1", "0.000300", "0.00"),
    ("16667", "0.000300", "5.00"),  # 5.0001
    ("50", "0.000300", "0.02"),  # 0.015 → 0.02
    ("1.234567", "0.123456", "0.15"),
    ("100000000", "0.000001", "100.00"),
]


@pytest.mark.parametrize(("quantity", "price", "amount"), AMOUNTS)
def test_line_amounts(quantity, price, amount):
    assert round_money(Decimal(quantity) * Decimal(price)) == Decimal(amount)


@pytest.mark.parametrize(("value", "text"), [
    (Decimal("5"), "5.00"), (Decimal("1.325"), "1.33"), (Decimal("1234567.8"), "1234567.80"),
])
def test_format_money(value, text):
    assert format_money(value) == text


@pytest.mark.parametrize(("value", "text"), [
    (Decimal("8000.000000"), "8000"), (Decimal("20.500000"), "20.5"), (Decimal("1E+3"), "1000"),
    (Decimal("0.000001"), "0.000001"), (Decimal("0"), "0"),
])
def test_format_quantity(value, text):
    assert format_quantity(value) == text


@pytest.mark.django_db
def test_a_price_in_a_currency_without_cents_is_invalid():
    import datetime as dt

    from django.core.exceptions import ValidationError

    from usage.models import Price, Region, ServiceItem

    price = Price(service=ServiceItem.objects.get(code="email"), region=Region.objects.create(code="jp", name="JP"),
                  unit_price=Decimal("0.03"), currency="JPY", effective_from=dt.date(2026, 1, 1))
    with pytest.raises(ValidationError, match="JPY has 0 decimal places"):
        price.full_clean()
