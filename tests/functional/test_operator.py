"""Operator routes: catalogue, teams, members, apps, subscriptions - validation and idempotency."""
from conftest import ANONYMOUS, OPERATOR, Identity


def test_put_resource_creates_then_replaces(api):
    body = {"kind": "api", "display_name": "Minutes", "unit": "processing minute", "charge_unit_size": 20}
    first = api.put("/v1/admin/resources/minutes", body)
    assert first.status == 201, first.text
    assert first.json["charge_unit_size"] == 20 and first.json["low_balance_percent"] == 10
    again = api.put("/v1/admin/resources/minutes", {**body, "display_name": "Processing minutes"})
    assert again.status == 200
    assert again.json["display_name"] == "Processing minutes"


def test_resource_unit_size_cannot_change_once_set(api):
    body = {"kind": "api", "display_name": "Minutes", "unit": "minute", "charge_unit_size": 20}
    api.put("/v1/admin/resources/minutes", body)
    reply = api.put("/v1/admin/resources/minutes", {**body, "charge_unit_size": 10})
    assert reply.status == 409
    assert reply.content_type == "application/problem+json"


