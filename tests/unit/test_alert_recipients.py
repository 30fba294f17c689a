"""Who an alert's emails go to and who it shows as ineligible (usage_ledger.domain.alert), and who may
list members (usage_ledger.domain.access): pure rules, no I/O."""
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st
from usage_ledger.domain.access import Action, may
from usage_ledger.domain.alert import Alert, Recipients, config_hash
from usage_ledger.domain.model import ROLES, Member

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)


def member(user_id: str, *roles: str) -> Member:
    return Member("team-a", user_id, f"{user_id}@example.com", frozenset(roles), True)


def alert(*recipients: str) -> Alert:
    return Alert("team-a", "al_1764072000000_0000abcd", "Low", (10, 5), ("minutes",), tuple(recipients),
                 config_hash((10, 5), ("minutes",), recipients), "alice", NOW)


def team(*members: Member) -> dict[str, Member]:
    return {m.user_id: m for m in members}


ALICE = member("alice", "primary_admin")
PAM = member("pam", "primary_admin", "hub_admin")
BOB = member("bob", "secondary_admin")
CAROL = member("carol", "sso_admin")
HANK = member("hank", "hub_admin")
OLGA = member("olga")


def test_recipients_still_admins_get_the_email_and_the_others_are_ineligible():
    members = team(ALICE, PAM, BOB, CAROL, HANK, OLGA)
    subject = alert("bob", "carol", "hank", "olga", "gone")
    assert subject.recipients(members) == Recipients(("bob", "carol"))
    assert subject.ineligible_recipients(members) == ["gone", "hank", "olga"]  # removed, hub_admin only, no role
    assert subject.view(members)["ineligible_recipient_user_ids"] == ["gone", "hank", "olga"]


def test_an_alert_with_no_eligible_recipient_left_goes_to_the_primary_admins():
    members = team(ALICE, PAM, BOB, HANK)
    subject = alert("gone", "hank")
    assert subject.recipients(members) == Recipients(("alice", "pam"), fallback=True)
    assert subject.ineligible_recipients(members) == ["gone", "hank"]


def test_the_fallback_never_reaches_other_roles_and_may_find_nobody():
    assert alert("gone").recipients(team(BOB, CAROL, HANK, OLGA)) == Recipients((), fallback=True)
    assert alert("gone").recipients({}) == Recipients((), fallback=True)


def test_one_eligible_recipient_is_enough_no_fallback():
    assert alert("gone", "carol").recipients(team(ALICE, CAROL)) == Recipients(("carol",))


def test_a_view_needs_only_the_recipients_members():
    """The list and detail routes read the recipients' member items only: the rule must not need more."""
    subject = alert("alice", "bob")
    assert subject.view(team(ALICE))["ineligible_recipient_user_ids"] == ["bob"]
    assert subject.view(team(ALICE, BOB))["ineligible_recipient_user_ids"] == []


role_sets = st.frozensets(st.sampled_from(ROLES))
teams = st.dictionaries(st.sampled_from(["u1", "u2", "u3", "u4", "u5"]), role_sets, max_size=5)


@given(teams, st.lists(st.sampled_from(["u1", "u2", "u3", "u4", "u5", "gone"]), min_size=1, max_size=6))
def test_recipients_and_ineligible_partition_the_alert_and_an_email_has_an_admin_audience(roles_of, recipients):
    members = {user: Member("team-a", user, f"{user}@x.example", roles, False) for user, roles in roles_of.items()}
    subject = alert(*recipients)
    chosen = subject.recipients(members)
    ineligible = subject.ineligible_recipients(members)
    eligible = subject.eligible_recipients(members)
    assert sorted(set(eligible) | set(ineligible)) == sorted(set(recipients))
    assert not set(eligible) & set(ineligible)
    assert all(members[user].is_admin for user in chosen.user_ids)  # nobody but an admin is ever emailed
    assert chosen.fallback == (not eligible)
    if chosen.fallback:
        assert set(chosen.user_ids) == {user for user, m in members.items() if m.is_primary_admin}


def test_listing_members_is_for_admins_only():
    assert [may(m, Action.LIST_MEMBERS) for m in (ALICE, BOB, CAROL, HANK, OLGA)] == [True, True, True, False, False]
