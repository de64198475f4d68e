from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_POST, require_safe
from django.views.i18n import LANGUAGE_QUERY_PARAMETER, set_language

from .forms import BillingInfoForm, LicenseForm
from .middleware import SESSION_KEY
from .permissions import account_required
from .selectors import billing_info_for, membership_list
from .services import BillingInfoError, billing_info_license_add, billing_info_submit, user_language_set
from .uploads import (
    LICENSE_MAX_BYTES,
    LICENSE_REQUEST_MAX_BYTES,
    REQUIREMENTS,
    LicenseUploadHandler,
    request_too_large,
    too_large_message,
)


@require_POST
@login_required
def account_switch(request):
    """Make another of the user's accounts the current one."""
    try:
        account_id = int(request.POST.get("account", ""))
    except ValueError:
        raise Http404("Unknown account.") from None
    if not membership_list(user=request.user).filter(account_id=account_id).exists():
        raise Http404("Unknown account.")
    request.session[SESSION_KEY] = account_id
    target = request.POST.get("next") or reverse("billing:summary")
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        target = reverse("billing:summary")
    return HttpResponseRedirect(target)


def language_set(request):
    """Django's ``set_language`` (POST ``language``, ``next``: the cookie
    and the redirect), and for a signed-in user the language saved as
    their preference, so it follows them to other browsers, emails and PDFs."""
    response = set_language(request)
    if request.method == "POST" and request.user.is_authenticated:
        user_language_set(user=request.user, language=request.POST.get(LANGUAGE_QUERY_PARAMETER, ""))
    return response


# --- billing information (billing-rules §7) -------------------------------


# Seconds a client is asked to wait when every decode slot is taken.
DECODER_BUSY_RETRY_AFTER = 30


@csrf_exempt  # CSRF is checked by _billing_info, after the upload handler is installed
def billing_info(request):
    """GET: the billing information page. POST: the owner's one submission,
    or the license alone when billing information is on file without one.

    The license upload handler must be in place before anything reads the
    body. A file over 2 MB is discarded as it streams in, so the typed
    fields survive; only a request over LICENSE_REQUEST_MAX_BYTES is
    answered from its Content-Length without reading the body at all."""
    request.upload_handlers = [LicenseUploadHandler(request)]
    if request.method == "POST" and request_too_large(request):
        return _billing_info_too_large(request)
    return _billing_info(request)


def _render_info(request, *, form=None, status=200, error="", license_error=""):
    """The page: the whole form before submission, the license form when
    billing information is on file without a license, else read-only."""
    membership = request.membership
    info = billing_info_for(account=membership.account)
    can_edit = membership.can("edit_billing_info")
    wants_license = info is not None and not info.license_file and can_edit
    if form is None and can_edit and (info is None or wants_license):
        form = BillingInfoForm() if info is None else LicenseForm()
    return render(request, "accounts/billing_info.html", {
        "account": membership.account, "info": info,
        "form": form if info is None else None, "license_form": form if wants_license else None,
        "can_edit": can_edit, "error": error, "requirements": REQUIREMENTS,
        "max_bytes": LICENSE_MAX_BYTES, "license_error": license_error,
        "support_email": getattr(settings, "BILLING_SUPPORT_EMAIL", ""),
    }, status=status)


@account_required("view")
def _billing_info_too_large(request):
    """The body was not read, so nothing typed can be shown again."""
    if not request.membership.can("edit_billing_info"):
        raise PermissionDenied(_("Only the account owner may submit billing information."))
    limit = f"{LICENSE_REQUEST_MAX_BYTES // 1_048_576} MB"
    lost = "" if billing_info_for(account=request.membership.account) else (
        ", so the typed fields could not be kept: fill in the form again and choose a smaller file")
    return _render_info(request, status=413, license_error=too_large_message(),
                        error=f"Nothing was saved. The upload was over {limit} and was not read{lost}.")


@csrf_protect
@account_required("view")
def _billing_info(request):
    if request.method not in ("GET", "HEAD", "POST"):
        return HttpResponseNotAllowed(["GET", "POST"])
    if request.method != "POST":
        return _render_info(request)
    membership = request.membership
    if not membership.can("edit_billing_info"):
        raise PermissionDenied(_("Only the account owner may submit billing information."))
    info = billing_info_for(account=membership.account)
    if info is not None and info.license_file:
        return _render_info(request, status=409, error=(
            "Billing information has already been submitted for this account. Contact support to modify it."))
    handler = next((h for h in request.upload_handlers if isinstance(h, LicenseUploadHandler)), None)
    form_class = BillingInfoForm if info is None else LicenseForm
    form = form_class(request.POST, request.FILES, upload_errors=handler.errors if handler else None)
    if not form.is_valid():
        response = _render_info(request, form=form, status=503 if form.decoder_busy else 400, error=(
            "Nothing was saved: the server is busy." if form.decoder_busy
            else "Nothing was saved. Correct the fields marked below."))
        if form.decoder_busy:
            response["Retry-After"] = str(DECODER_BUSY_RETRY_AFTER)
        return response
    try:
        if info is None:
            billing_info_submit(account=membership.account, user=request.user, values=form.values(),
                                license=form.clean_license_image, now=timezone.now())
        else:
            billing_info_license_add(account=membership.account, user=request.user,
                                     license=form.clean_license_image, now=timezone.now())
    except BillingInfoError as exc:
        return _render_info(request, status=409, error=str(exc))
    if info is None:
        messages.success(request, _("Billing information submitted. Our team will verify the business license."))
    else:
        messages.success(request, _("Business license added. Our team will verify it against the billing "
                                    "information."))
    return redirect("billing:info")


@require_safe
@account_required("view")
def billing_license(request):
    """The current account's license image, to its own users only (another
    account's user gets 404). Never cached by shared caches, never sniffed,
    never a public URL."""
    info = billing_info_for(account=request.membership.account)
    if info is None or not info.license_file:
        raise Http404("No business license on file.")
    return license_response(info)


def license_response(info) -> FileResponse:
    """Serve a stored license (console and admin)."""
    try:
        handle = info.license_file.open("rb")
    except (FileNotFoundError, OSError):
        raise Http404("The license file is missing from storage.") from None
    extension = "png" if info.license_content_type == "image/png" else "jpg"
    response = FileResponse(handle, content_type=info.license_content_type or "application/octet-stream",
                            as_attachment=False, filename=f"business-license-{info.account.code}.{extension}")
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, no-store"
    response["Content-Security-Policy"] = "default-src 'none'; img-src 'self'; sandbox"
    response["Cross-Origin-Resource-Policy"] = "same-origin"
    patch_vary_headers(response, ["Cookie"])
    return response
