"""The page's URL scheme: one place that builds every link the page and the emails use.

The page routes on the hash, so a link works on any static host and survives sign-in:
    #/teams/<team>/balances[/<resource>]
    #/teams/<team>/usage?resource_id=&granularity=&group_by=&from=&to=
    #/teams/<team>/invoices[/<invoice>]
    #/teams/<team>/settings/alerts
    #/teams/<team>/settings/payment/<subscription>
web/app.js parses exactly these (tests/browser checks each email's link opens its view).
"""
from __future__ import annotations

from urllib.parse import quote, urlencode


def _path(*parts: str) -> str:
    return "/".join(quote(part, safe="") for part in parts)


def page_link(base_url: str, team_id: str, *view: str, **query: str | None) -> str:
    """`base_url/#/teams/<team>/<view...>[?query]`, every segment escaped."""
    link = f"{base_url.rstrip('/')}/#/teams/{_path(team_id, *view)}"
    params = {name: value for name, value in query.items() if value is not None}
    return f"{link}?{urlencode(params)}" if params else link


def balances_link(base_url: str, team_id: str, resource_id: str | None = None) -> str:
    return page_link(base_url, team_id, "balances", *([resource_id] if resource_id else []))


def invoice_link(base_url: str, team_id: str, invoice_id: str) -> str:
    return page_link(base_url, team_id, "invoices", invoice_id)


def payment_method_link(base_url: str, team_id: str, subscription_id: str) -> str:
    return page_link(base_url, team_id, "settings", "payment", subscription_id)


def alerts_link(base_url: str, team_id: str) -> str:
    return page_link(base_url, team_id, "settings", "alerts")
