from django.conf import settings
from django.urls import include, path

from . import views
from .alerts import views as alert_views

# Mounted under /billing/ in the "billing" namespace.
billing_patterns: list = [
    path("repay/", views.repay, name="repay"),
    path("topup/", views.topup, name="topup"),
    path("payments/", views.payments, name="payments"),
    path("payments/<uuid:public_id>/", views.payment_detail, name="payment_detail"),
    path("payments/<uuid:public_id>/continue/", views.payment_continue, name="payment_continue"),
    path("payments/<uuid:public_id>/cancel/", views.payment_cancel_view, name="payment_cancel"),
    path("alerts/", alert_views.alerts, name="alerts"),
]
# Mounted at the site root (provider callbacks, sandbox checkout).
root_patterns: list = [
    path("pay/sandbox/<uuid:public_id>/", views.sandbox_checkout, name="payments_sandbox_checkout"),
    path("payments/callback/<slug:method>/", views.provider_callback, name="payments_callback"),
    path("payments/alipay/return/", views.alipay_return, name="payments_alipay_return"),
    path("payments/paypal/return/", views.paypal_return, name="payments_paypal_return"),
    path("payments/paypal/cancel/", views.paypal_cancel, name="payments_paypal_cancel"),
]
# The local Alipay and PayPal emulators (development, demo, tests; never by default).
if settings.PAYMENT_EMULATORS:
    root_patterns.append(path("emulators/", include("payments.emulators.urls")))
