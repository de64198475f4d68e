"""The console page's assembly: ``page.billing_console`` composes the
summary from the apps' selectors; ``charts`` draws its SVG charts."""
from .page import BillingConsole, billing_console

__all__ = ["BillingConsole", "billing_console"]
