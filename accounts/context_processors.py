from .selectors import membership_list


def current_account(request):
    """The current membership and the switcher's choices, for base.html."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    membership = getattr(request, "membership", None)
    return {
        "membership": membership if membership else None,
        "memberships": membership_list(user=user),
    }
