"""Resolves the signed-in user's current account (the account switcher)
and activates their saved language."""
from __future__ import annotations

from django.utils import translation
from django.utils.functional import SimpleLazyObject

from .selectors import membership_for

SESSION_KEY = "current_account_id"


class CurrentAccountMiddleware:
    """Sets ``request.membership``: the user's membership in the account
    chosen in the switcher (kept in the session), or their first one."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        def resolve():
            user = getattr(request, "user", None)
            if user is None or not user.is_authenticated:
                return None
            return membership_for(user=user, account_id=request.session.get(SESSION_KEY))

        request.membership = SimpleLazyObject(resolve)
        return self.get_response(request)


class UserLanguageMiddleware:
    """Activates the signed-in user's saved language (``User.language``)
    over what LocaleMiddleware chose from the cookie or Accept-Language.
    Runs after AuthenticationMiddleware; LocaleMiddleware (before it) sets
    Content-Language from the language active when the response leaves."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated and user.language:
            translation.activate(user.language)
            request.LANGUAGE_CODE = translation.get_language()
        return self.get_response(request)
