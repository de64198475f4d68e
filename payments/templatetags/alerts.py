"""``{% alerts_strip %}``: the active alerts of the current account, for the
notice strip on the summary page (templates/billing/alerts/_strip.html)."""
from django import template

from payments.alerts.views import alerts_strip

register = template.Library()


@register.inclusion_tag("billing/alerts/_strip_items.html", takes_context=True)
def alerts_strip_items(context):
    membership = getattr(context.get("request"), "membership", None)
    items = alerts_strip(account=membership.account) if membership else []
    return {"items": items}
