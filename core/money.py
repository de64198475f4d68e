"""Money and quantity arithmetic: Decimal only, one rounding rule.

Precision (also the database column definitions):

- money amounts: 2 decimal places, ``Decimal(14, 2)`` columns, in the
  account's currency;
- unit prices: up to 6 decimal places, ``Decimal(18, 6)``;
- usage quantities: up to 6 decimal places, ``Decimal(20, 6)`` (emails,
  IPs, requests and certificates are whole numbers; data flow is GB).

Currencies: amounts are kept and rounded in cents, so an account (and a
price) may be in any ISO 4217 currency whose minor unit is 2 decimals;
``currency_check`` refuses the others (JPY has 0, KWD 3, CLF 4) with a
clear error rather than bill them in a precision they do not have.

``round_money`` is the only place an amount is rounded (billing-rules §5:
half up, once per line).
"""
from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")
QUANTITY_PLACES = 6
QUANTUM = Decimal("0.000001")
ZERO = Decimal("0")
ZERO_MONEY = Decimal("0.00")

MONEY_DIGITS = 14
MONEY_PLACES = 2
PRICE_DIGITS = 18
PRICE_PLACES = 6
QUANTITY_DIGITS = 20

# Data flow free allowance per billable email: 200 KB = 0.0002 GB (§4).
FREE_GB_PER_EMAIL = Decimal("0.0002")


# ISO 4217 (list one, 2024) codes whose minor unit is not 2 decimals, and
# the codes without one (precious metals, funds, testing codes).
MINOR_UNITS_NOT_2 = {
    **dict.fromkeys(["BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND",
                     "VUV", "XAF", "XOF", "XPF"], 0),
    **dict.fromkeys(["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"], 3),
    **dict.fromkeys(["CLF", "UYW"], 4),
    **dict.fromkeys(["XAG", "XAU", "XBA", "XBB", "XBC", "XBD", "XDR", "XPD", "XPT", "XSU", "XTS", "XUA", "XXX"],
                    None),
}


def currency_check(code: str) -> str:
    """``code`` if it is a three-letter ISO 4217 code billed in cents; else
    ValueError saying why."""
    if not (isinstance(code, str) and len(code) == 3 and code.isascii() and code.isalpha() and code.isupper()):
        raise ValueError(f"currency {code!r} is not a three-letter ISO 4217 code (e.g. USD)")
    if code in MINOR_UNITS_NOT_2:
        places = MINOR_UNITS_NOT_2[code]
        what = "has no minor unit" if places is None else f"has {places} decimal places"
        raise ValueError(f"currency {code} {what}; amounts here are kept in cents, so only currencies "
                         "with 2 decimal places (USD, CNY, EUR, SGD …) can be billed")
    return code


def round_money(value: Decimal) -> Decimal:
    """Round half up to cents. The one rounding function for money."""
    return Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)


def format_money(value: Decimal) -> str:
    """Plain decimal with exactly 2 places, no thousands separators (CSV)."""
    return f"{round_money(value):.2f}"


def format_quantity(value: Decimal) -> str:
    """Plain decimal without exponent or trailing zeros (``20.5``, ``8000``)."""
    value = Decimal(value)
    if value == value.to_integral_value():
        return f"{value.quantize(Decimal(1)):f}"
    return f"{value.normalize():f}"


# --- the plain grammar of decimals typed into files, requests and provisioning ---

_WHOLE_TEXT = re.compile(r"(?:0|[1-9][0-9]*)\Z")
_FRACTION_TEXT = re.compile(r"(?:0|[1-9][0-9]*)\.([0-9]+)\Z")
_NEGATIVE_TEXT = re.compile(r"-[0-9]+(?:\.[0-9]+)?\Z")
_LEADING_ZERO_TEXT = re.compile(r"0[0-9]+(?:\.[0-9]+)?\Z")
_NOT_WRITTEN = "no sign, spaces, exponent or separators"


def parse_plain_decimal(text: str, *, places: int, what: str = "value") -> Decimal:
    """A decimal written plainly: ASCII digits without a leading zero
    (``0|[1-9][0-9]*``) and, when ``places`` > 0, optionally a point and 1
    to ``places`` digits (``123.456789``). Everything ``Decimal()`` also
    reads is refused: exponents, signs (``-0`` and ``+7`` too), spaces,
    ``_`` separators, digits of other scripts (full-width ``１０``,
    Arabic-Indic ``٣``), ``NaN``. ValueError says what is wrong."""
    if _WHOLE_TEXT.match(text):
        return Decimal(text)
    fraction = _FRACTION_TEXT.match(text)
    if fraction and places and len(fraction.group(1)) <= places:
        return Decimal(text)
    if not text:
        raise ValueError(f"{what} is empty")
    if fraction:
        if not places:
            raise ValueError(f"{what} must be a whole number, got {text!r}")
        raise ValueError(f"{what} {text!r} has more than {places} decimal places")
    if _NEGATIVE_TEXT.match(text) and Decimal(text):
        raise ValueError(f"{what} must be ≥ 0")
    if _LEADING_ZERO_TEXT.match(text):
        raise ValueError(f"{what} {text!r} has a leading zero")
    if not places:
        raise ValueError(f"{what} {text!r} is not a whole number in plain digits 0-9 ({_NOT_WRITTEN})")
    raise ValueError(f"{what} {text!r} is not a plain decimal: digits 0-9, and at most {places} decimals "
                     f"after a '.' ({_NOT_WRITTEN})")


class JsonNumber(Decimal):
    """A JSON number read exactly, keeping ``text``: the number as written,
    so the plain grammar judges ``1e3``, ``1.0`` or ``-0`` as they came
    (``Decimal`` would print ``1E+3``). ``str()`` is the Decimal's."""

    text: str


def json_number(text: str) -> JsonNumber:
    """``parse_float`` for ``json``: every number with a fraction or an exponent."""
    number = JsonNumber(text)
    number.text = text
    return number


def json_integer(text: str) -> int | JsonNumber:
    """``parse_int`` for ``json``: an int, exact; but ``-0``, which an int
    would turn into a plain ``0``, stays as written."""
    return json_number(text) if text == "-0" else int(text)
