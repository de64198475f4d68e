"""``/billing/alerts/``: the account's alert settings (the owner edits them;
accountants and viewers read them), the user's own opt-out (a POST with
``receive``), the active
alerts and their history (50 a page)."""
from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods

from accounts.permissions import account_required

from .conditions import alert_settings_get
from .forms import AlertSettingsForm
from .selectors import RECIPIENT_ROLES, alert_history, alert_opted_out, alerts_active
from .services import SETTINGS_FIELDS, alert_opt_out_set, alert_settings_update
from .wording import alert_text

ALERTS_PER_PAGE = 50


def _initial(settings) -> dict:
    values = {name: getattr(settings, name) for name in SETTINGS_FIELDS}
    for name in ("funds_threshold", "budget_amount"):
        values[name] = f"{values[name]:.2f}" if values[name] is not None else ""
    return values


@require_http_methods(["GET", "HEAD", "POST"])
@account_required("view")
def alerts(request):
    membership = request.membership
    account = membership.account
    may_edit = membership.role == "owner"
    settings = alert_settings_get(account=account)
    status = 200
    if request.method == "POST" and "receive" in request.POST:
        return _subscription(request)
    if request.method == "POST":
        if not may_edit:
            raise PermissionDenied(_("Only an owner may change the alert settings."))
        form = AlertSettingsForm(request.POST, currency=account.currency)
        if form.is_valid():
            alert_settings_update(account=account, values={n: form.cleaned_data[n] for n in SETTINGS_FIELDS},
                                  user=request.user, now=timezone.now())
            messages.success(request, _("Alert settings saved."))
            return redirect("billing:alerts")
        status = 400
    else:
        form = AlertSettingsForm(initial=_initial(settings), currency=account.currency)
    if not may_edit:
        for field in form.fields.values():
            field.disabled = True
    page = Paginator(alert_history(account=account), ALERTS_PER_PAGE).get_page(request.GET.get("page"))
    history = [(a, alert_text(a)) for a in page.object_list]
    return render(request, "billing/alerts/alerts.html", {
        "account": account, "form": form, "may_edit": may_edit, "settings": settings,
        "history": history, "page": page, "active_count": alerts_active(account=account).count(),
        "opted_out": alert_opted_out(account=account, user=request.user),
        "receives": membership.role in RECIPIENT_ROLES,
    }, status=status)


def _subscription(request):
    """The signed-in user's own choice (any role): ``receive=0`` opts out,
    ``receive=1`` back in."""
    choice = request.POST.get("receive", "")
    if choice not in ("0", "1"):
        messages.error(request, _("Choose whether to receive alert emails."))
        return redirect("billing:alerts")
    account = request.membership.account
    alert_opt_out_set(account=account, user=request.user, opted_out=choice == "0", now=timezone.now())
    messages.success(request, _("You will receive this account's alert emails.") if choice == "1"
                     else _("You will no longer receive this account's alert emails."))
    return redirect("billing:alerts")


def alerts_strip(*, account) -> list:
    """The active alerts for the summary page's strip: (alert, text)."""
    return [(a, alert_text(a)) for a in alerts_active(account=account)[:10]]
