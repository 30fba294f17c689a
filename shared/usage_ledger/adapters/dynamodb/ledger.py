"""The ledger table's team side: catalogue, teams, members, apps, subscriptions, and a team's
partition read as one snapshot (everything a balance card needs sits under `RES#`)."""
from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from pynamodb.exceptions import DeleteError, PutError, TransactWriteError, UpdateError
from pynamodb.transactions import TransactWrite

from usage_ledger.adapters.dynamodb import keys
from usage_ledger.adapters.dynamodb.errors import (
    CONDITION_FAILED,
    cancellation_codes,
    is_condition_failure,
    lost_a_race,
)
from usage_ledger.adapters.dynamodb.models import (
    AppItem,
    BalanceItem,
    CardAttribute,
    CycleItem,
    IndexedKey,
    LedgerItem,
    MemberItem,
    ResourceItem,
    SubscriptionIdItem,
    SubscriptionItem,
    TeamItem,
    connection,
)
from usage_ledger.adapters.dynamodb.paging import decode_cursor, encode_cursor, page
from usage_ledger.domain.billing import CLOSED, CLOSING, OPEN
from usage_ledger.domain.calendar import Cycle, cycle_by_index, iso
from usage_ledger.domain.errors import Contended
from usage_ledger.domain.ids import is_identifier
from usage_ledger.domain.ledger import BalanceState, CycleKey, TeamSnapshot
from usage_ledger.domain.model import App, Member, PaymentMethod, Resource, Subscription, Team

# the catalogue changes rarely; a container re-reads it at most this often
CATALOGUE_TTL_SECONDS = 60
BATCH_GET_LIMIT = 100

MAX_END_RACES = 10  # tries of a subscription's end against concurrent ingest applies


# ------------------------------------------------------------------ item <-> domain


def resource_of(item: ResourceItem) -> Resource:
    return Resource(resource_id=item.resource_id, kind=item.kind, display_name=item.display_name, unit=item.unit,
                    charge_unit_size=item.charge_unit_size, low_balance_percent=item.low_balance_percent)


def team_of(item: TeamItem) -> Team:
    return Team(team_id=item.team_id, name=item.name)


def member_of(item: MemberItem) -> Member:
    return Member(team_id=item.team_id, user_id=item.user_id, email=item.email,
                  roles=frozenset(str(role) for role in item.roles or []),
                  full_access=bool(item.full_access))


def app_of(item: AppItem) -> App:
    return App(team_id=item.team_id, app_id=item.app_id, name=item.name, owner_user_id=item.owner_user_id)


def card_of(value: CardAttribute | None) -> PaymentMethod | None:
    if value is None:
        return None
    return PaymentMethod(value.id or "", value.brand, value.last4, int(value.exp_month), int(value.exp_year))


def card_attribute(card: PaymentMethod) -> CardAttribute:
    return CardAttribute(id=card.id, brand=card.brand, last4=card.last4, exp_month=card.exp_month,
                         exp_year=card.exp_year)


def subscription_of(item: SubscriptionItem) -> Subscription:
    return Subscription(
        team_id=item.team_id, subscription_id=item.subscription_id, resource_id=item.resource_id, type=item.type,
        quantity=int(item.quantity) if item.quantity is not None else None, starts_at=item.starts_at,
        ends_at=item.ends_at, refresh_period=item.refresh_period, purchased_at=item.purchased_at,
        timezone=item.timezone, unit_amount=int(item.unit_amount) if item.unit_amount is not None else None,
        currency=item.currency, purchaser_user_id=item.purchaser_user_id, payment_method=card_of(item.payment_method),
        customer_id=item.customer_id, past_due_invoices=frozenset(item.past_due or ()),
    )


def subscription_item(subscription: Subscription, *, listed_for_alerts: bool) -> SubscriptionItem:
    item = SubscriptionItem(
        keys.team_pk(subscription.team_id),
        keys.subscription_sk(subscription.resource_id, subscription.subscription_id),
        team_id=subscription.team_id, subscription_id=subscription.subscription_id,
        resource_id=subscription.resource_id, type=subscription.type, quantity=subscription.quantity,
        starts_at=subscription.starts_at, ends_at=subscription.ends_at, refresh_period=subscription.refresh_period,
        purchased_at=subscription.purchased_at, timezone=subscription.timezone,
        unit_amount=subscription.unit_amount, currency=subscription.currency,
        purchaser_user_id=subscription.purchaser_user_id,
        payment_method=card_attribute(subscription.payment_method) if subscription.payment_method else None,
        customer_id=subscription.customer_id,
    )
    if listed_for_alerts:  # an api resource is listed for the scheduled alert run from its first subscription
        item.GSI1PK = keys.API_RESOURCES_INDEX
        item.GSI1SK = keys.api_resource_gsi1sk(subscription.team_id, subscription.resource_id)
    return item


def balance_of(item: BalanceItem) -> BalanceState:
    return BalanceState(
        usage_total=item.usage_total, pending_usage=item.pending_usage, charged_units=int(item.charged_units),
        consumed=dict(item.consumed or {}), retired_units=int(item.retired_units or 0), payg_units=int(item.payg_units),
        shortfall_units=int(item.shortfall_units), daily_units=dict(item.daily_units or {}),
        version=int(item.version or 0),
    )


# ------------------------------------------------------------------ the store


class LedgerStore:
    def __init__(self) -> None:
        self._catalogue: dict[str, Resource] = {}
        self._catalogue_loaded_at = 0.0

    # -------------------------------------------------------------- catalogue

    def catalogue(self, *, fresh: bool = False) -> dict[str, Resource]:
        """The whole catalogue (one Query), cached per container for CATALOGUE_TTL_SECONDS."""
        if fresh or time.monotonic() - self._catalogue_loaded_at > CATALOGUE_TTL_SECONDS:
            self._catalogue = {item.resource_id: resource_of(item)
                               for item in ResourceItem.query(keys.CATALOGUE_PK)}
            self._catalogue_loaded_at = time.monotonic()
        return self._catalogue

    def resource(self, resource_id: str) -> Resource | None:
        """A catalogue resource; a miss re-reads the catalogue once (it may be new)."""
        found = self.catalogue().get(resource_id)
        if found is None:
            found = self.catalogue(fresh=True).get(resource_id)
        return found

    def forget_catalogue(self) -> None:
        self._catalogue, self._catalogue_loaded_at = {}, 0.0

    def put_resource(self, resource: Resource) -> bool | None:
        """Create or replace; True when created, None when it exists with another kind or charge
        unit size (those give meaning to stored balances and cannot change)."""
        item = ResourceItem(keys.CATALOGUE_PK, keys.catalogue_sk(resource.resource_id),
                            resource_id=resource.resource_id, kind=resource.kind,
                            display_name=resource.display_name, unit=resource.unit,
                            charge_unit_size=resource.charge_unit_size,
                            low_balance_percent=resource.low_balance_percent)
        existed = ResourceItem.SK.exists()
        try:
            created = self._put_reporting_creation(item, ~existed | ((ResourceItem.kind == resource.kind) & (
                ResourceItem.charge_unit_size == resource.charge_unit_size)))
        except PutError as error:
            if is_condition_failure(error):
                return None
            raise
        self.forget_catalogue()
        return created

    # -------------------------------------------------------------- teams, members, apps

    def get_team(self, team_id: str) -> Team | None:
        item = self._get(keys.team_pk(team_id), keys.TEAM_META_SK)
        return team_of(item) if isinstance(item, TeamItem) else None

    def get_member(self, team_id: str, user_id: str) -> Member | None:
        item = self._get(keys.team_pk(team_id), keys.member_sk(user_id))
        return member_of(item) if isinstance(item, MemberItem) else None

    def team_and_member(self, team_id: str, user_id: str | None) -> tuple[Team | None, Member | None]:
        """The team and one member in one BatchGetItem."""
        team, member, _ = self.team_member_balance(team_id, user_id, None)
        return team, member

    def team_member_balance(self, team_id: str, user_id: str | None,
                            resource_id: str | None) -> tuple[Team | None, Member | None, BalanceState]:
        """The team, one member and the team's balance of one resource, in one BatchGetItem."""
        pk = keys.team_pk(team_id)
        wanted = [(pk, keys.TEAM_META_SK)] + ([(pk, keys.member_sk(user_id))] if user_id else [])
        wanted += [(pk, keys.balance_sk(resource_id))] if resource_id else []
        team, member, balance = None, None, BalanceState()
        for item in LedgerItem.batch_get(wanted, consistent_read=True):
            if isinstance(item, TeamItem):
                team = team_of(item)
            elif isinstance(item, MemberItem):
                member = member_of(item)
            elif isinstance(item, BalanceItem):
                balance = balance_of(item)
        return team, member, balance

    def existing_teams(self, team_ids: set[str]) -> set[str]:
        """Which of these teams exist: one BatchGetItem per 100 ids."""
        wanted = [(keys.team_pk(team_id), keys.TEAM_META_SK) for team_id in sorted(team_ids)]
        return {item.team_id for item in LedgerItem.batch_get(wanted, attributes_to_get=["team_id", "entity"])
                if isinstance(item, TeamItem)}

    def put_team(self, team: Team) -> bool:
        return self._put_reporting_creation(TeamItem(keys.team_pk(team.team_id), keys.TEAM_META_SK,
                                                     team_id=team.team_id, name=team.name,
                                                     GSI1PK=keys.TEAMS_INDEX, GSI1SK=team.team_id))

    def put_member(self, member: Member) -> bool:
        return self._put_reporting_creation(MemberItem(
            keys.team_pk(member.team_id), keys.member_sk(member.user_id), team_id=member.team_id,
            user_id=member.user_id, email=member.email, roles=sorted(member.roles), full_access=member.full_access,
            GSI1PK=keys.user_gsi1pk(member.user_id), GSI1SK=member.team_id))

    def teams_of(self, user_id: str, limit: int) -> list[tuple[Team, Member]]:
        """The teams a user is a member of (up to `limit`, by team id): one GSI1 Query of the
        user's keys, then one consistent BatchGetItem of those member and team items (an index
        entry the table no longer holds, a member removed since, is dropped)."""
        team_ids = [key.GSI1SK for key in IndexedKey.gsi1.query(keys.user_gsi1pk(user_id), limit=limit)
                    if key.GSI1SK][:limit]
        wanted = [(keys.team_pk(team_id), sk) for team_id in team_ids
                  for sk in (keys.TEAM_META_SK, keys.member_sk(user_id))]
        teams: dict[str, Team] = {}
        members: dict[str, Member] = {}
        for item in LedgerItem.batch_get(wanted, consistent_read=True) if wanted else ():
            if isinstance(item, TeamItem):
                teams[item.team_id] = team_of(item)
            elif isinstance(item, MemberItem):
                members[item.team_id] = member_of(item)
        return [(teams[team_id], members[team_id]) for team_id in sorted(members) if team_id in teams]

    def put_app(self, app: App) -> bool:
        return self._put_reporting_creation(AppItem(
            keys.team_pk(app.team_id), keys.app_sk(app.app_id), team_id=app.team_id, app_id=app.app_id,
            name=app.name, owner_user_id=app.owner_user_id))

    def delete_member(self, team_id: str, user_id: str) -> bool:
        """Remove a member: one conditional DeleteItem; False when there was none. Nothing else is
        rewritten (usage recorded under them, alerts naming them and apps they own stay)."""
        return self._delete(MemberItem(keys.team_pk(team_id), keys.member_sk(user_id)))

    def delete_app(self, team_id: str, app_id: str) -> bool:
        """Remove an app: one conditional DeleteItem; False when there was none."""
        return self._delete(AppItem(keys.team_pk(team_id), keys.app_sk(app_id)))

    def members_page(self, team_id: str, limit: int, cursor: str | None) -> tuple[list[Member], str | None]:
        """A page of the team's members by user id: one Query of its `MEMBER#` items (Limit: the
        page and one more), never the rest of the partition."""
        after = decode_cursor(cursor, team_id, is_identifier) if cursor is not None else None
        items, more = page(MemberItem, keys.team_pk(team_id), keys.member_sk, limit=limit, after=after,
                           condition=MemberItem.SK.startswith(keys.MEMBER_PREFIX), consistent_read=True)
        members = [member_of(item) for item in items]
        return members, encode_cursor(team_id, members[-1].user_id) if more and members else None

    def members(self, team_id: str, user_ids: Iterable[str]) -> dict[str, Member]:
        """Those of these users who are members of the team, by user id: one BatchGetItem per 100
        ids (none for no ids), whatever the size of the team."""
        pk = keys.team_pk(team_id)
        wanted = [(pk, keys.member_sk(user_id)) for user_id in sorted(set(user_ids))]
        if not wanted:
            return {}
        return {item.user_id: member_of(item) for item in LedgerItem.batch_get(wanted, consistent_read=True)
                if isinstance(item, MemberItem)}

    # -------------------------------------------------------------- subscriptions

    def create_subscription(self, subscription: Subscription, *, listed_for_alerts: bool) -> bool:
        """Write it with its id guard (ids are unique per team across resources); False when
        the id is taken."""
        guard = SubscriptionIdItem(keys.team_pk(subscription.team_id),
                                   keys.subscription_id_sk(subscription.subscription_id),
                                   resource_id=subscription.resource_id)
        item = subscription_item(subscription, listed_for_alerts=listed_for_alerts)
        try:
            with TransactWrite(connection=connection()) as transaction:
                transaction.save(guard, condition=SubscriptionIdItem.SK.does_not_exist())
                transaction.save(item, condition=SubscriptionItem.SK.does_not_exist())
        except TransactWriteError as error:
            if CONDITION_FAILED in cancellation_codes(error):
                return False
            raise
        return True

    def subscription_by_id(self, team_id: str, subscription_id: str) -> Subscription | None:
        guard = self._get(keys.team_pk(team_id), keys.subscription_id_sk(subscription_id))
        if not isinstance(guard, SubscriptionIdItem):
            return None
        return self.get_subscription(team_id, guard.resource_id, subscription_id)

    def get_subscription(self, team_id: str, resource_id: str, subscription_id: str) -> Subscription | None:
        item = self._get(keys.team_pk(team_id), keys.subscription_sk(resource_id, subscription_id))
        return subscription_of(item) if isinstance(item, SubscriptionItem) else None

    def set_payment_method(self, subscription: Subscription, card: PaymentMethod, customer_id: str) -> bool:
        """Save a new card on a payg subscription: one conditional UpdateItem, taken only while the
        item is still that payg subscription with the Customer it was read with (the card is
        attached to that Customer). False when it is not."""
        item = SubscriptionItem(keys.team_pk(subscription.team_id),
                                keys.subscription_sk(subscription.resource_id, subscription.subscription_id))
        same_customer = (SubscriptionItem.customer_id == subscription.customer_id
                         if subscription.customer_id else SubscriptionItem.customer_id.does_not_exist())
        condition = SubscriptionItem.SK.exists() & (SubscriptionItem.type == "payg") & same_customer
        try:
            item.update(actions=[SubscriptionItem.payment_method.set(card_attribute(card)),
                                 SubscriptionItem.customer_id.set(customer_id)], condition=condition)
        except UpdateError as error:
            if is_condition_failure(error):
                return False
            raise
        return True

    def end_subscription(self, subscription: Subscription, ends_at: datetime) -> bool:
        """Set `ends_at` unless the stored one is already at or before it (an earlier end stays):
        False then. In the same transaction: a payg's open cycles that end later end there (the one
        containing the end, or one a late unit started after it), so the close job finds them due
        then; and the resource's balance version moves, so an ingest apply that read the
        subscription before the end re-reads it instead of debiting past it or making a cycle with
        its old end."""
        pk = keys.team_pk(subscription.team_id)
        item = SubscriptionItem(pk, keys.subscription_sk(subscription.resource_id, subscription.subscription_id))
        condition = SubscriptionItem.SK.exists() & (SubscriptionItem.ends_at.does_not_exist()
                                                    | (SubscriptionItem.ends_at > ends_at))
        for _ in range(MAX_END_RACES):  # a conflict with an ingest apply or a close: read again and retry
            balance = self._get(pk, keys.balance_sk(subscription.resource_id))
            try:
                with TransactWrite(connection=connection()) as transaction:
                    transaction.update(item, actions=[SubscriptionItem.ends_at.set(ends_at)], condition=condition)
                    if isinstance(balance, BalanceItem):
                        # pynamodb adds the version's increment and its condition (the version read)
                        transaction.update(balance, actions=[])
                    for cycle, ended in self._cycles_ending(subscription, ends_at):
                        transaction.update(CycleItem(pk, cycle.SK), actions=[
                            CycleItem.cycle_end.set(ended.end_date.isoformat()), CycleItem.ends_at.set(ended.ends_at),
                            CycleItem.GSI1SK.set(iso(ended.ends_at))], condition=CycleItem.status == OPEN)
                return True
            except TransactWriteError as error:
                codes = cancellation_codes(error)
                if codes and codes[0] == CONDITION_FAILED:
                    return False
                if not lost_a_race(codes) and CONDITION_FAILED not in codes:
                    raise
        raise Contended(f"subscription {subscription.subscription_id}: ending it kept conflicting")

    @staticmethod
    def _cycles_ending(subscription: Subscription, ends_at: datetime) -> list[tuple[CycleItem, Cycle]]:
        """The payg's open cycles (in `RES#`) that end after `ends_at`, each as it ends then."""
        if not subscription.is_payg or subscription.purchased_at is None or subscription.timezone is None:
            return []
        found = []
        for stored in LedgerItem.query(keys.team_pk(subscription.team_id), LedgerItem.SK.startswith(
                keys.cycles_prefix(subscription.resource_id, subscription.subscription_id)), consistent_read=True):
            if isinstance(stored, CycleItem) and stored.status == OPEN and stored.ends_at > ends_at:
                found.append((stored, cycle_by_index(subscription.purchased_at, subscription.timezone,
                                                     int(stored.cycle_index), ends_at)))
        return found

    # -------------------------------------------------------------- the team's partition

    def load_team(self, team_id: str, *, everything: bool = False, resource_id: str | None = None) -> TeamSnapshot:
        """One Query of the team's partition: its resources (default), one resource, or all of it."""
        snapshot = TeamSnapshot(team=None)
        condition = None
        if not everything:
            condition = LedgerItem.SK.startswith(keys.resource_prefix(resource_id) if resource_id
                                                 else keys.RESOURCE_PREFIX)
        for item in LedgerItem.query(keys.team_pk(team_id), condition, consistent_read=True):
            self._absorb(snapshot, item)
        return snapshot

    @staticmethod
    def _absorb(snapshot: TeamSnapshot, item: LedgerItem) -> None:
        if isinstance(item, TeamItem):
            snapshot.team = team_of(item)
        elif isinstance(item, MemberItem):
            member = member_of(item)
            snapshot.members[member.user_id] = member
        elif isinstance(item, AppItem):
            app = app_of(item)
            snapshot.apps[app.app_id] = app
        elif isinstance(item, BalanceItem):
            snapshot.ledger(item.resource_id).state = balance_of(item)
        elif isinstance(item, SubscriptionItem):
            ledger = snapshot.ledger(item.resource_id)
            ledger.subscriptions.append(subscription_of(item))
            if item.closed_through is not None:
                ledger.closed_through[item.subscription_id] = int(item.closed_through)
        elif isinstance(item, CycleItem):
            ledger = snapshot.ledger(item.resource_id)
            key = CycleKey(item.subscription_id, int(item.cycle_index))
            ledger.cycle_units[key] = int(item.charged_units or 0)
            if item.status in (CLOSED, CLOSING):
                ledger.closed_cycles.add(key)

    # -------------------------------------------------------------- plumbing

    @staticmethod
    def _get(pk: str, sk: str) -> Any:
        try:
            return LedgerItem.get(pk, sk, consistent_read=True)
        except LedgerItem.DoesNotExist:
            return None

    @staticmethod
    def _delete(item: LedgerItem) -> bool:
        try:
            item.delete(condition=type(item).SK.exists())
        except DeleteError as error:
            if is_condition_failure(error):
                return False
            raise
        return True

    @staticmethod
    def _put_reporting_creation(item: LedgerItem, condition: Any = None) -> bool:
        """Put the item; True when it did not exist before (one request: ALL_OLD tells)."""
        connection = type(item)._get_connection()
        args, kwargs = item._get_save_args(condition=condition)
        response = connection.put_item(*args, **{**kwargs, "return_values": "ALL_OLD"})
        return "Attributes" not in response
