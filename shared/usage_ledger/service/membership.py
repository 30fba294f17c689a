"""Who the caller is in a team: the member, or a 404 that does not tell whether the team exists."""
from __future__ import annotations

from usage_ledger.domain.errors import NotFound
from usage_ledger.domain.model import Member
from usage_ledger.service.ports import LedgerStore


class Membership:
    def __init__(self, ledger: LedgerStore) -> None:
        self.ledger = ledger

    def member(self, team_id: str, user_id: str) -> Member:
        member = self.ledger.get_member(team_id, user_id)
        if member is None:
            raise NotFound(f"Team {team_id!r} not found.")
        return member
