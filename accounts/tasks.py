"""Tasks of the accounts app."""
from __future__ import annotations

from celery import shared_task
from django.conf import settings
from django.contrib.auth.forms import PasswordResetForm


@shared_task(name="accounts.password_reset_send", ignore_result=True)
def password_reset_send(*, email: str) -> None:
    """Send the reset link to ``email`` if an active user has it; nothing
    otherwise. Run off the request so the answer never reveals which."""
    form = PasswordResetForm({"email": email})
    if not form.is_valid():
        return
    scheme, _, domain = settings.SITE_URL.partition("://")
    form.save(
        domain_override=domain,
        use_https=scheme == "https",
        from_email=settings.DEFAULT_FROM_EMAIL,
        subject_template_name="registration/password_reset_subject.txt",
        email_template_name="registration/password_reset_email.html",
    )
