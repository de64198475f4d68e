from django.urls import path

from . import views

urlpatterns = [
    path("switch/", views.account_switch, name="account_switch"),
]

# Mounted under /billing/ in the "billing" namespace.
billing_patterns = [
    path("info/", views.billing_info, name="info"),
    path("info/license/", views.billing_license, name="license"),
]
