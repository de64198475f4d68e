"""Console downloads (the CSV export, the PDF statement) and tax invoices (interfaces.md)."""
from __future__ import annotations

import io

from django.contrib import messages
from django.http import FileResponse, Http404, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods

from accounts.permissions import account_required
from accounts.selectors import billing_info_for
from core.periods import Period, PeriodError

from .export import account_export_csv, export_periods
from .forms import InvoiceRequestForm
from .models import Bill, InvoiceKind, InvoiceStatus
from .selectors import console_period_check, console_periods
from .statements import statement_document, statement_filename, statement_issue
from .tax_invoices import (
    InvoiceRequestError,
    file_suffix,
    invoice_request_create,
    invoice_request_get,
    invoice_request_list,
    invoiceable_bills,
)


def _error(request, status: int, title: str, message: str):
    return render(request, "error.html", {"title": title, "message": message}, status=status)


def period_error_response(request, *, account, now, requested: str, error: PeriodError):
    """The 400 page for a period the console cannot show, with the periods
    that exist: one answer for the summary page and the CSV export."""
    return render(request, "billing/period_error.html", {
        "title": "No such billing period", "message": str(error), "requested": requested,
        "periods": console_periods(account=account, now=now),
    }, status=400)


def csv_response(chunks, filename: str) -> StreamingHttpResponse:
    response = StreamingHttpResponse(chunks, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "private, no-store"
    return response


@require_GET
@account_required("export")
def export_csv(request):
    """``?period=YYYY-MM`` or ``?from=YYYY-MM&to=YYYY-MM`` (default: the
    current period): settled lines, or the Pending estimate."""
    account = request.membership.account
    now = timezone.now()
    period, first, last = (request.GET.get(k, "").strip() for k in ("period", "from", "to"))
    try:
        if period and (first or last):
            raise PeriodError("give either period, or from and to, not both")
        if first or last:
            if not (first and last):
                raise PeriodError("give both from and to (YYYY-MM)")
            periods = export_periods(first=first, last=last, now=now)
        else:
            # The console page's rule first, so one period gets the same
            # 400 with the same words on the page and here. A from–to range
            # may reach before the first usage (its empty months add no rows).
            target = Period.parse(period) if period else Period.current(now)
            console_period_check(account=account, period=target, periods=console_periods(account=account, now=now))
            periods = export_periods(first=str(target), now=now)
    except PeriodError as exc:
        return period_error_response(request, account=account, now=now,
                                     requested=period or f"{first}–{last}", error=exc)
    span = str(periods[0]) if len(periods) == 1 else f"{periods[0]}_{periods[-1]}"
    return csv_response(account_export_csv(account=account, periods=periods),
                        f"aurora-billing-{account.code}-{span}.csv")


@require_GET
@account_required("statements")
def statement_pdf(request, period: str):
    """The settled statement of the current account, rendered as of now
    (issued first if it never was; the issue-time PDF stays archived)."""
    account = request.membership.account
    try:
        target = Period.parse(period)
    except PeriodError as exc:
        return _error(request, 400, "Bad period", str(exc))
    bill = Bill.objects.filter(account=account, period=str(target)).select_related("account").first()
    if bill is None:
        now = timezone.now()
        if not target.is_billable(now):
            message = (f"{target} is not settled yet: its statement is available after "
                       f"{target.bill_time_label()}.")
        else:
            message = f"There is no statement for {target}: {account.name} has no bill for that period."
        return _error(request, 404, "No statement", message)
    now = timezone.now()
    statement = statement_issue(bill=bill, now=now)
    _, pdf = statement_document(statement=statement, now=now)
    response = FileResponse(io.BytesIO(pdf), content_type="application/pdf",
                            filename=statement_filename(statement=statement))
    response["Cache-Control"] = "private, no-store"
    return response


@require_http_methods(["GET", "HEAD", "POST"])
@account_required("view")
def tax_invoices(request):
    """``/billing/invoices/``: the account's invoice requests and issued
    invoices; owners and accountants request one for paid bills here."""
    account = request.membership.account
    may_request = request.membership.can("invoices")
    invoiceable = invoiceable_bills(account=account) if may_request else []
    form = None
    status = 200
    if may_request:
        initial = {"email": request.user.email, "kind": InvoiceKind.GENERAL_VAT,
                   "title": getattr(billing_info_for(account=account), "company_name", "")}
        form = InvoiceRequestForm(request.POST if request.method == "POST" else None, initial=initial,
                                  invoiceable=invoiceable, currency=account.currency)
    if request.method == "POST":
        if not may_request:
            return _error(request, 403, _("Not allowed"), _("Only owners and accountants request invoices."))
        if form.is_valid():
            data = form.cleaned_data
            try:
                invoice_request_create(account=account, user=request.user, bill_ids=data["bills"], kind=data["kind"],
                                       title=data["title"], taxpayer_id=data["taxpayer_id"],
                                       address_phone=data["address_phone"], bank_account=data["bank_account"],
                                       email=data["email"], now=timezone.now())
            except InvoiceRequestError as exc:
                form.add_error(None, str(exc))
            else:
                messages.success(request, _("Invoice requested. We email you when it is issued."))
                return redirect("billing:invoices")
        status = 400
    return render(request, "invoices/tax_invoices.html", {
        "account": account, "form": form, "invoiceable": invoiceable, "may_request": may_request,
        "requests": invoice_request_list(account=account),
    }, status=status)


@require_GET
@account_required("invoices")
def tax_invoice_file(request, public_id):
    """The issued invoice's file, for the account's owners and accountants."""
    invoice = invoice_request_get(account=request.membership.account, public_id=public_id)
    if invoice is None or invoice.status != InvoiceStatus.ISSUED or not invoice.invoice_file:
        raise Http404
    response = FileResponse(invoice.invoice_file.open("rb"), as_attachment=True,
                            filename=f"invoice-{invoice.invoice_number}{file_suffix(invoice.invoice_file)}")
    response["Cache-Control"] = "private, no-store"
    return response
