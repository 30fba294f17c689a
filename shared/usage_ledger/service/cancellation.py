"""Ending a subscription (contract section 7): the team's purchaser or a primary_admin cancels a
payg, an operator ends any grant. `ends_at` becomes the time of the request unless an earlier end
stands; from then on it covers nothing, and a payg's last cycle ends there (domain.calendar), which
the close job bills into its final invoice once the grace period has passed."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from usage_ledger.domain.errors import NotFound
from usage_ledger.service.operator import subscription_view
from usage_ledger.service.ports import LedgerStore


class Cancellation:
    def __init__(self, ledger: LedgerStore) -> None:
        self.ledger = ledger

    def cancel(self, team_id: str, subscription_id: str, now: datetime, *, payg_only: bool) -> dict[str, Any]:
        """The subscription as it then stands; cancelling again changes nothing. NotFound for an
        unknown one (or, with `payg_only`, the team route, one that is not payg)."""
        subscription = self.ledger.subscription_by_id(team_id, subscription_id)
        if subscription is None or (payg_only and not subscription.is_payg):
            raise NotFound(f"Team {team_id!r} has no {'payg ' if payg_only else ''}subscription {subscription_id!r}.")
        if subscription.ends_at is None or subscription.ends_at > now:
            # False: a racing cancel (or an earlier end) got there first; its end stands
            self.ledger.end_subscription(subscription, now)
            subscription = self.ledger.subscription_by_id(team_id, subscription_id) or subscription
        return subscription_view(subscription)
