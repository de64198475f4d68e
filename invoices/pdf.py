"""The statement PDF: a bill rendered through a Django template with WeasyPrint.

Rendering is pure (no writes): ``statement_snapshot`` reads a bill's lines
once, ``statement_pdf_render`` turns a snapshot into bytes in the active
language (callers choose it with ``translation.override``; docs/i18n.md);
``invoices.statements`` issues (numbers, renders and archives once) and
renders again as of a download or an email.

WeasyPrint fetches only what ``StaticFilesURLFetcher`` serves: the
project's static files and inline ``data:`` URLs; ``file:``, ``http(s):``
and every other URL a template (or text in it) could name is refused
before any I/O, and the PDF renders without it. The template names its fonts explicitly: DejaVu Sans for Latin text
and figures, WenQuanYi Micro Hei (a CJK font, Debian fonts-wqy-microhei) for
Chinese company names and addresses; WeasyPrint embeds the glyphs used.
"""
from __future__ import annotations

import datetime as dt
import logging
import mimetypes
import posixpath
from dataclasses import dataclass
from decimal import Decimal
from email.utils import parseaddr
from urllib.parse import unquote, urljoin, urlsplit

from django.conf import settings
from django.contrib.staticfiles import finders
from django.contrib.staticfiles.storage import staticfiles_storage
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.translation import gettext

from core.money import ZERO_MONEY
from core.periods import BILLING_TZ, Period
from usage.models import EMAIL_RESULTS, EmailResult, Region, ServiceItem, service_item_label

from .export import format_unit_price
from .models import Bill, BillLine

log = logging.getLogger("aurora.statements")

# Public path of the repayment page (interfaces.md, "Console URLs").
REPAY_PATH = "/billing/repay/"


@dataclass(frozen=True)
class EmailResultRow:
    region: str
    counts: list[int]
    total: int


class FetchRefused(ValueError):
    """A URL the statement renderer does not fetch (WeasyPrint logs it and
    renders without the resource)."""


def _static_name(url: str) -> str | None:
    """The static file name ``url`` names under ``STATIC_URL`` (what
    ``{% static %}`` writes, resolved against the PDF's base URL ``SITE_URL``), or
    None. Names with ``..``, backslashes or NUL are refused."""
    parts = urlsplit(url)
    prefix = urlsplit(urljoin(f"{settings.SITE_URL}/", settings.STATIC_URL))  # STATIC_URL may be absolute
    if (parts.scheme.lower(), parts.netloc.lower()) != (prefix.scheme.lower(), prefix.netloc.lower()):
        return None
    if not parts.path.startswith(prefix.path):
        return None
    name = unquote(parts.path[len(prefix.path):])
    if not name or "\\" in name or "\x00" in name or name.startswith("/"):
        return None
    if posixpath.normpath(name) != name or ".." in name.split("/"):
        return None
    return name


def _static_read(name: str) -> bytes | None:
    """The bytes of static file ``name``: the source directories first
    (staticfiles finders), then the collected files (``STATIC_ROOT``,
    hashed names under the manifest storage)."""
    path = finders.find(name)
    if path:
        with open(path, "rb") as f:
            return f.read()
    if staticfiles_storage.exists(name):
        with staticfiles_storage.open(name, "rb") as f:
            return f.read()
    return None


def static_files_fetcher():
    """A WeasyPrint URL fetcher serving static files and ``data:`` only."""
    from weasyprint.urls import URLFetcher, URLFetcherResponse

    class StaticFilesURLFetcher(URLFetcher):
        # WeasyPrint 70 (pyproject.toml): a URLFetcher subclass whose ``fetch(url, headers)``
        # returns a URLFetcherResponse; any exception it raises is logged by
        # WeasyPrint and the resource skipped (not a failed render).
        def fetch(self, url, headers=None):
            if urlsplit(url).scheme.lower() == "data":
                return super().fetch(url, headers)  # decoded in memory, nothing fetched
            name = _static_name(url)
            body = _static_read(name) if name else None
            if body is None:
                log.warning("statement PDF: refused to fetch %s", url[:300])
                raise FetchRefused(f"not a static file of the project: {url[:300]}")
            content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
            return URLFetcherResponse(url, body=body, headers={"Content-Type": content_type})

    return StaticFilesURLFetcher(allowed_protocols=("data",), allow_redirects=False)


def console_url(*, period: Period) -> str:
    """Absolute link to the period in the console."""
    return f"{settings.SITE_URL}{reverse('billing:summary')}?period={period}"


def repay_url() -> str:
    return f"{settings.SITE_URL}{REPAY_PATH}"


def billing_contact() -> str:
    """The address customers write to about billing (the statements' sender)."""
    return parseaddr(settings.DEFAULT_FROM_EMAIL)[1]


@dataclass(frozen=True)
class LineFigures:
    """What a line stood at: paid and balance in the bill's currency, status."""

    paid: Decimal
    balance: Decimal
    status: str

    @classmethod
    def of(cls, line: BillLine) -> LineFigures:
        return cls(paid=line.paid, balance=line.balance, status=line.status)

    @classmethod
    def from_json(cls, data: dict) -> LineFigures:
        return cls(paid=Decimal(data["paid"]), balance=Decimal(data["balance"]), status=data["status"])

    def as_json(self) -> dict:
        return {"paid": str(self.paid), "balance": str(self.balance), "status": self.status}


@dataclass(frozen=True)
class PaymentSinceIssue:
    """A line paid (further) after the statement was issued."""

    line: BillLine
    paid_at_issue: Decimal
    paid_since: Decimal


@dataclass(frozen=True)
class StatementSnapshot:
    """One reading of a bill's lines at ``as_of``, beside their figures at
    issue: everything a statement document (the PDF, the email bodies)
    shows comes from one snapshot, so no two of them disagree.

    Billed figures (usage, deductions, prices, amounts) never change after
    settlement; ``paid``, ``balance`` and ``status`` are those at ``as_of``."""

    bill: Bill
    number: str
    issued_at: dt.datetime
    as_of: dt.datetime
    lines: list[BillLine]
    issued: dict[int, LineFigures]

    @property
    def total_paid(self) -> Decimal:
        return sum((line.paid for line in self.lines), ZERO_MONEY)

    @property
    def amount_due(self) -> Decimal:
        return sum((line.balance for line in self.lines), ZERO_MONEY)

    @property
    def issued_amount_due(self) -> Decimal:
        return sum((f.balance for f in self.issued.values()), ZERO_MONEY)

    @property
    def payments_since_issue(self) -> list[PaymentSinceIssue]:
        out = []
        for line in self.lines:
            at_issue = self.issued.get(line.pk, LineFigures.of(line)).paid
            if line.paid != at_issue:
                out.append(PaymentSinceIssue(line=line, paid_at_issue=at_issue, paid_since=line.paid - at_issue))
        return out

    @property
    def paid_since_issue(self) -> Decimal:
        return sum((p.paid_since for p in self.payments_since_issue), ZERO_MONEY)

    @property
    def is_issue(self) -> bool:
        """True for the rendering made at issue (the archived one)."""
        return self.as_of == self.issued_at

    def issued_lines_json(self) -> dict:
        """The figures at issue as stored in ``Statement.issued_lines``."""
        return {str(pk): figures.as_json() for pk, figures in self.issued.items()}


def instant_label(instant: dt.datetime) -> str:
    """``2026-11-20 12:00 UTC+8``: how documents say when they speak of."""
    return f"{instant.astimezone(BILLING_TZ):%Y-%m-%d %H:%M} UTC+8"


def statement_snapshot(*, bill: Bill, number: str, issued_at: dt.datetime, as_of: dt.datetime,
                       issued_lines: dict | None = None) -> StatementSnapshot:
    """Read ``bill``'s lines once, as of ``as_of``. ``issued_lines``: the
    figures recorded at issue (``Statement.issued_lines``); None when this
    snapshot is the issue itself (its figures are the issue figures)."""
    lines = list(BillLine.objects.filter(bill=bill).order_by("position"))
    services = dict(ServiceItem.objects.values_list("code", "name"))
    regions = dict(Region.objects.filter(code__in={line.region_id for line in lines}).values_list("code", "name"))
    for line in lines:
        line.service_name = service_item_label(code=line.service_id,
                                               name=services.get(line.service_id, line.service_id))
        line.region_name = regions.get(line.region_id, line.region_id)
        line.unit_price_text = format_unit_price(line.unit_price)
    if issued_lines is None:
        issued = {line.pk: LineFigures.of(line) for line in lines}
    else:
        issued = {int(pk): LineFigures.from_json(data) for pk, data in issued_lines.items()}
    return StatementSnapshot(bill=bill, number=number, issued_at=issued_at, as_of=as_of, lines=lines, issued=issued)


def statement_context(*, snapshot: StatementSnapshot) -> dict:
    """Everything the statement PDF shows."""
    bill = snapshot.bill
    period = Period.parse(bill.period)
    lines = snapshot.lines
    email_rows = [
        EmailResultRow(region=f"{line.region_name} {line.region_id}" + (
            ", " + gettext("late usage of %(period)s") % {"period": line.adjustment_for}
            if line.adjustment_for else ""),
            counts=[getattr(line, r) or 0 for r in EMAIL_RESULTS],
            total=sum(getattr(line, r) or 0 for r in EMAIL_RESULTS))
        for line in lines if line.service_id == "email"
    ]
    return {
        "bill": bill,
        "account": bill.account,
        "number": snapshot.number,
        "issue_date": snapshot.issued_at.astimezone(BILLING_TZ).date(),
        "issued_label": instant_label(snapshot.issued_at),
        "as_of_label": instant_label(snapshot.as_of),
        "is_issue": snapshot.is_issue,
        "period": period,
        "period_first": period.first_day,
        "period_last": period.last_day,
        "settled_date": bill.settled_at.astimezone(BILLING_TZ).date(),
        "info": bill.billing_info_snapshot or {},
        "lines": lines,
        "email_rows": email_rows,
        "result_labels": [str(label) for _, label in EmailResult.choices],
        "total_amount": bill.total_amount,
        "funds_applied": bill.funds_applied,
        "total_paid": snapshot.total_paid,
        "amount_due": snapshot.amount_due,
        "issued_amount_due": snapshot.issued_amount_due,
        "payments_since_issue": snapshot.payments_since_issue,
        "paid_since_issue": snapshot.paid_since_issue,
        "currency": bill.currency,
        "console_url": console_url(period=period),
        "repay_url": repay_url(),
        "billing_contact": billing_contact(),
    }


def statement_html(*, snapshot: StatementSnapshot) -> str:
    return render_to_string("invoices/statement.html", statement_context(snapshot=snapshot))


def statement_pdf_render(*, snapshot: StatementSnapshot) -> bytes:
    """The statement of ``snapshot`` as PDF bytes."""
    return html_pdf_render(html=statement_html(snapshot=snapshot), identifier=snapshot.number)


def html_pdf_render(*, html: str, identifier: str) -> bytes:
    """``html`` as PDF; the only resources fetched are the project's static
    files (``StaticFilesURLFetcher``)."""
    from weasyprint import HTML  # heavy import, only where a PDF is made

    return HTML(string=html, base_url=f"{settings.SITE_URL}/", url_fetcher=static_files_fetcher()).write_pdf(
        pdf_identifier=identifier.encode(), custom_metadata=True,
    )
