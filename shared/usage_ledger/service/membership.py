"""Who is in a team: the caller as a member (or a 404 that does not tell whether the team
exists), and the team's member list (admins pick alert recipients from it)."""
from __future__ import annotations

from typing import Any

from usage_ledger.domain.errors import NotFound
from usage_ledger.domain.model import Member
from usage_ledger.service.ports import LedgerStore

MY_TEAMS = 100  # GET /v1/me lists this many of a user's teams (one BatchGetItem's worth of reads)


def member_view(member: Member) -> dict[str, Any]:
    return {"user_id": member.user_id, "email": member.email, "roles": sorted(member.roles)}


class Membership:
    def __init__(self, ledger: LedgerStore) -> None:
        self.ledger = ledger

    def member(self, team_id: str, user_id: str) -> Member:
        member = self.ledger.get_member(team_id, user_id)
        if member is None:
            raise NotFound(f"Team {team_id!r} not found.")
        return member

    def me(self, user_id: str) -> dict[str, Any]:
        """The caller's teams and roles in each (the page routes by them and shows only what the
        roles allow); at most MY_TEAMS teams."""
        teams = self.ledger.teams_of(user_id, MY_TEAMS)
        return {"user_id": user_id, "teams": [
            {"team_id": team.team_id, "name": team.name, "roles": sorted(member.roles)} for team, member in teams]}

    def list_members(self, team_id: str, limit: int, cursor: str | None) -> dict[str, Any]:
        """One page by user id; a team of any size is read one page at a time."""
        members, next_cursor = self.ledger.members_page(team_id, limit, cursor)
        return {"items": [member_view(member) for member in members], "next_cursor": next_cursor}
