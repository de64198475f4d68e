"""Mounted at /emulators/ only when PAYMENT_EMULATORS is on (payments/urls.py)."""
from django.urls import path

from . import alipay, paypal

app_name = "emulators"
urlpatterns = [
    path("alipay/gateway.do", alipay.gateway, name="alipay_gateway"),
    path("alipay/decide/", alipay.decide, name="alipay_decide"),
    path("paypal/v1/oauth2/token", paypal.token, name="paypal_token"),
    path("paypal/v2/checkout/orders", paypal.orders, name="paypal_orders"),
    path("paypal/v2/checkout/orders/<str:order_id>", paypal.order_show, name="paypal_order"),
    path("paypal/v2/checkout/orders/<str:order_id>/capture", paypal.capture, name="paypal_capture"),
    path("paypal/checkoutnow", paypal.checkout, name="paypal_checkout"),
    path("paypal/v1/notifications/certs/<str:cert_id>", paypal.certificate, name="paypal_certificate"),
]
