"""Access control for console views: the current account and the role's rights."""
from __future__ import annotations

from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

# What each permission is called in the 403 message ("may not <action>").
ACTION_LABELS = {
    "view": gettext_lazy("view"),
    "export": gettext_lazy("export"),
    "statements": gettext_lazy("statements"),
    "repay": gettext_lazy("repay"),
    "topup": gettext_lazy("topup"),
    "edit_billing_info": gettext_lazy("edit_billing_info"),
}


def account_required(action: str = "view"):
    """View decorator: the user is signed in, belongs to an account (else
    404) and their role allows ``action`` (else 403). The view receives
    ``request.membership`` set, and reads ``request.membership.account``."""

    def decorator(view):
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            membership = request.membership
            if not membership:
                raise Http404("No billing account is linked to this sign-in.")
            if not membership.can(action):
                raise PermissionDenied(_("Your role (%(role)s) may not %(action)s.") % {
                    "role": membership.get_role_display(), "action": ACTION_LABELS.get(action, action)})
            return view(request, *args, **kwargs)

        return wrapped

    return decorator
