"""URLconf. Public paths are contracts (interfaces.md, "Console URLs").

Everything under /billing/ shares the ``billing`` namespace; each app
contributes its own ``billing_patterns``.
"""
from django.contrib import admin
from django.urls import include, path

import accounts.urls
import accounts.views
import invoices.urls
import payments.urls
import usage.urls

from . import health, history_views, security, views

billing_patterns = [
    path("", views.billing_summary, name="summary"),
    path("bills/", history_views.bills, name="bills"),
    path("funds/", history_views.funds, name="funds"),
    path("packs/", history_views.packs, name="packs"),
    path("insight/", history_views.insight, name="insight"),
    *accounts.urls.billing_patterns,
    *invoices.urls.billing_patterns,
    *payments.urls.billing_patterns,
]

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", health.healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("accounts/login/", security.LoginView.as_view(), name="login"),
    path("accounts/password_reset/", security.PasswordResetView.as_view(), name="password_reset"),
    path("accounts/reset/<uidb64>/<token>/", security.PasswordResetConfirmView.as_view(),
         name="password_reset_confirm"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("accounts/", include(accounts.urls)),
    path("billing/", include((billing_patterns, "billing"))),
    path("help/billing/", views.help_billing, name="help_billing"),
    # Django's set_language, which also saves a signed-in user's preference
    path("i18n/setlang/", accounts.views.language_set, name="set_language"),
    path("api/", include(usage.urls)),
    *invoices.urls.root_patterns,
    *payments.urls.root_patterns,
]

handler400 = "aurora_billing.views.bad_request"
handler403 = "aurora_billing.views.permission_denied"
handler404 = "aurora_billing.views.page_not_found"
handler500 = "aurora_billing.views.server_error"
