"""The statement PDF: a bill rendered through a Django template with WeasyPrint.

Rendering is pure (no writes): ``statement_pdf_render`` returns bytes;
``invoices.statements.statement_issue`` numbers, renders and stores them
once. The template names its fonts explicitly: DejaVu Sans for Latin text
and figures, WenQuanYi Micro Hei (a CJK font, Debian fonts-wqy-microhei) for
Chinese company names and addresses; WeasyPrint embeds the glyphs used.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from email.utils import parseaddr

from django.conf import settings
from django.template.loader import render_to_string
from django.urls import reverse

from core.periods import BILLING_TZ, Period
from usage.models import EMAIL_RESULTS, EmailResult, Region, ServiceItem

from .export import format_unit_price
from .models import Bill, BillLine

# Public path of the repayment page (interfaces.md, "Console URLs").
REPAY_PATH = "/billing/repay/"


@dataclass(frozen=True)
class EmailResultRow:
    region: str
    counts: list[int]
    total: int


def console_url(*, period: Period) -> str:
    """Absolute link to the period in the console."""
    return f"{settings.SITE_URL}{reverse('billing:summary')}?period={period}"


def repay_url() -> str:
    return f"{settings.SITE_URL}{REPAY_PATH}"


def billing_contact() -> str:
    """The address customers write to about billing (the statements' sender)."""
    return parseaddr(settings.DEFAULT_FROM_EMAIL)[1]


def statement_context(*, bill: Bill, number: str, issued_at: dt.datetime) -> dict:
    """Everything the statement shows; balances are those at ``issued_at``."""
    period = Period.parse(bill.period)
    lines = list(BillLine.objects.filter(bill=bill).order_by("position"))
    services = dict(ServiceItem.objects.values_list("code", "name"))
    regions = dict(Region.objects.filter(code__in={line.region_id for line in lines}).values_list("code", "name"))
    for line in lines:
        line.service_name = services.get(line.service_id, line.service_id)
        line.region_name = regions.get(line.region_id, line.region_id)
        line.unit_price_text = format_unit_price(line.unit_price)
    email_rows = [
        EmailResultRow(region=f"{line.region_name} {line.region_id}" + (
            f", late usage of {line.adjustment_for}" if line.adjustment_for else ""),
            counts=[getattr(line, r) or 0 for r in EMAIL_RESULTS],
            total=sum(getattr(line, r) or 0 for r in EMAIL_RESULTS))
        for line in lines if line.service_id == "email"
    ]
    total_paid = sum((line.paid for line in lines), Decimal("0.00"))
    amount_due = sum((line.balance for line in lines), Decimal("0.00"))
    return {
        "bill": bill,
        "account": bill.account,
        "number": number,
        "issue_date": issued_at.astimezone(BILLING_TZ).date(),
        "period": period,
        "period_first": period.first_day,
        "period_last": period.last_day,
        "settled_date": bill.settled_at.astimezone(BILLING_TZ).date(),
        "info": bill.billing_info_snapshot or {},
        "lines": lines,
        "email_rows": email_rows,
        "result_labels": [label for _, label in EmailResult.choices],
        "total_amount": bill.total_amount,
        "funds_applied": bill.funds_applied,
        "total_paid": total_paid,
        "amount_due": amount_due,
        "currency": bill.currency,
        "console_url": console_url(period=period),
        "repay_url": repay_url(),
        "billing_contact": billing_contact(),
    }


def statement_html(*, bill: Bill, number: str, issued_at: dt.datetime) -> str:
    return render_to_string("invoices/statement.html",
                            statement_context(bill=bill, number=number, issued_at=issued_at))


def statement_pdf_render(*, bill: Bill, number: str, issued_at: dt.datetime) -> bytes:
    """The statement of ``bill`` as PDF bytes."""
    from weasyprint import HTML  # heavy import, only where a PDF is made

    html = statement_html(bill=bill, number=number, issued_at=issued_at)
    return HTML(string=html, base_url=str(settings.BASE_DIR)).write_pdf(
        pdf_identifier=number.encode(), custom_metadata=True,
    )
