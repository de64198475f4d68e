from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponseRedirect
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from .middleware import SESSION_KEY
from .selectors import membership_list


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
