from django.urls import path, re_path

from . import views

# Mounted under /billing/ in the "billing" namespace.
billing_patterns: list = [
    path("export.csv", views.export_csv, name="export_csv"),
    # Any name before ".pdf" reaches the view, so a malformed period is a 400, not a 404.
    re_path(r"^statements/(?P<period>[^/]+)\.pdf$", views.statement_pdf, name="statement_pdf"),
    path("invoices/", views.tax_invoices, name="invoices"),
    path("invoices/<uuid:public_id>/file", views.tax_invoice_file, name="invoice_file"),
]
# Mounted at the site root.
root_patterns: list = []
