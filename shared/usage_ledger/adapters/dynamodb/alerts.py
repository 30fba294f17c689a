"""Alerts, their configuration guards and notice states, in the team's `TEAM#<team>#ALERT` partition."""
from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from pynamodb.exceptions import DeleteError, PutError, TransactWriteError, UpdateError
from pynamodb.transactions import TransactWrite

from usage_ledger import retry
from usage_ledger.adapters.dynamodb import keys
from usage_ledger.adapters.dynamodb.errors import (
    CONDITION_FAILED,
    TRANSACTION_CONFLICT,
    cancellation_codes,
    is_condition_failure,
)
from usage_ledger.adapters.dynamodb.leases import lease_free
from usage_ledger.adapters.dynamodb.models import (
    AlertConfigItem,
    AlertItem,
    IndexedKey,
    LedgerItem,
    NoticeStateItem,
    connection,
)
from usage_ledger.adapters.dynamodb.paging import decode_cursor, encode_cursor, newest_first
from usage_ledger.domain.alert import ALERT_ID, Alert, Notice, NoticeState

# a transaction holds at most 100 items; a delete also carries the alert and its config item
STATES_PER_DELETE = 100 - 2
CREATE_ATTEMPTS = 5


def alert_of(item: AlertItem) -> Alert:
    return Alert(team_id=item.team_id, alert_id=item.alert_id, name=item.name,
                 windows_days=tuple(int(cast(Any, window)) for window in item.windows_days),  # numbers as stored
                 resource_ids=tuple(str(rid) for rid in item.resource_ids),
                 recipient_user_ids=tuple(str(uid) for uid in item.recipient_user_ids),
                 config_hash=item.config_hash, created_by=item.created_by, created_at=item.created_at)


def alert_item(alert: Alert) -> AlertItem:
    return AlertItem(keys.alerts_pk(alert.team_id), keys.alert_sk(alert.alert_id), team_id=alert.team_id,
                     alert_id=alert.alert_id, name=alert.name, windows_days=sorted(alert.windows_days, reverse=True),
                     resource_ids=sorted(alert.resource_ids), recipient_user_ids=sorted(alert.recipient_user_ids),
                     config_hash=alert.config_hash, created_by=alert.created_by, created_at=alert.created_at,
                     GSI1PK=keys.ALERTS_INDEX, GSI1SK=keys.alert_gsi1sk(alert.team_id, alert.alert_id))


def _is_alert_id(value: str) -> bool:
    return bool(ALERT_ID.match(value))


def _state_of(item: NoticeStateItem) -> NoticeState:
    return NoticeState(armed=bool(item.armed), sent=bool(item.sent), claim=item.claim, lease_until=item.lease_until)


class AlertStore:
    # -------------------------------------------------------------- alerts

    def create(self, alert: Alert) -> bool:
        """The alert and its configuration guard together; False when the team already has an
        alert with the same configuration."""
        guard = AlertConfigItem(keys.alerts_pk(alert.team_id), keys.alert_config_sk(alert.config_hash),
                                alert_id=alert.alert_id)
        for attempt in retry.attempts(CREATE_ATTEMPTS):
            try:
                with TransactWrite(connection=connection()) as transaction:
                    transaction.save(guard, condition=AlertConfigItem.SK.does_not_exist())
                    transaction.save(alert_item(alert), condition=AlertItem.SK.does_not_exist())
                return True
            except TransactWriteError as error:
                codes = cancellation_codes(error)
                if CONDITION_FAILED in codes:
                    return False
                # a racing transaction on the same config item: retry, the loser then sees the guard
                if TRANSACTION_CONFLICT not in codes or attempt == CREATE_ATTEMPTS - 1:
                    raise
        raise AssertionError("unreachable")

    def alert_with_config(self, team_id: str, config_hash: str) -> str | None:
        item = _get(keys.alerts_pk(team_id), keys.alert_config_sk(config_hash))
        return item.alert_id if isinstance(item, AlertConfigItem) else None

    def get(self, team_id: str, alert_id: str) -> Alert | None:
        if not _is_alert_id(alert_id):
            return None
        item = _get(keys.alerts_pk(team_id), keys.alert_sk(alert_id))
        return alert_of(item) if isinstance(item, AlertItem) else None

    def page(self, team_id: str, limit: int, cursor: str | None) -> tuple[list[Alert], str | None]:
        after = decode_cursor(cursor, team_id, _is_alert_id) if cursor is not None else None
        items, more = newest_first(AlertItem, keys.alerts_pk(team_id), keys.alert_sk, limit=limit, after=after,
                                   condition=AlertItem.SK.startswith(keys.ALERT_PREFIX), consistent_read=True)
        alerts = [alert_of(item) for item in items]
        return alerts, encode_cursor(team_id, alerts[-1].alert_id) if more and alerts else None

    def delete(self, alert: Alert) -> bool:
        """The alert, its configuration guard and its notice states go together; False when the
        alert was already gone."""
        pk = keys.alerts_pk(alert.team_id)
        states = [item.SK for item in NoticeStateItem.query(
            pk, NoticeStateItem.SK.startswith(keys.alert_notices_prefix(alert.alert_id)), consistent_read=True,
            attributes_to_get=["PK", "SK", "entity"])]
        first, rest = states[:STATES_PER_DELETE], states[STATES_PER_DELETE:]
        try:
            with TransactWrite(connection=connection()) as transaction:
                transaction.delete(AlertItem(pk, keys.alert_sk(alert.alert_id)), condition=AlertItem.SK.exists())
                transaction.delete(AlertConfigItem(pk, keys.alert_config_sk(alert.config_hash)))
                for sk in first:
                    transaction.delete(NoticeStateItem(pk, sk))
        except TransactWriteError as error:
            if CONDITION_FAILED in cancellation_codes(error):
                return False
            raise
        # more states than one transaction holds: the alert is gone, so leftovers are inert
        for start in range(0, len(rest), 100):
            with TransactWrite(connection=connection()) as transaction:
                for sk in rest[start:start + 100]:
                    transaction.delete(NoticeStateItem(pk, sk))
        return True

    # -------------------------------------------------------------- evaluation

    def teams_to_evaluate(self) -> list[str]:
        """Teams with an alert or an api resource, read from GSI1 (never a Scan)."""
        teams: set[str] = set()
        for index_pk in (keys.ALERTS_INDEX, keys.API_RESOURCES_INDEX):
            for key in IndexedKey.gsi1.query(index_pk):
                teams.add(keys.team_of_gsi1sk(key.GSI1SK))
        return sorted(teams)

    def load(self, team_id: str) -> tuple[list[Alert], dict[Notice, NoticeState]]:
        """A team's alerts and notice states: one Query."""
        alerts: list[Alert] = []
        states: dict[Notice, NoticeState] = {}
        for item in LedgerItem.query(keys.alerts_pk(team_id), consistent_read=True):
            if isinstance(item, AlertItem):
                alerts.append(alert_of(item))
            elif isinstance(item, NoticeStateItem):
                states[keys.notice_of_sk(item.SK)] = _state_of(item)
        return alerts, states

    def claim(self, team_id: str, notice: Notice, claim: str, now: datetime, lease_until: datetime) -> bool:
        """Claim the notification; of two evaluations at once only one wins."""
        item = NoticeStateItem(keys.alerts_pk(team_id), keys.notice_sk(notice), armed=False, sent=False,
                               claim=claim, claimed_at=now, lease_until=lease_until)
        try:
            item.save(condition=NoticeStateItem.SK.does_not_exist() | (NoticeStateItem.armed == True)  # noqa: E712 - a condition
                      | ((NoticeStateItem.sent == False) & lease_free(NoticeStateItem.lease_until, now)))  # noqa: E712
            return True
        except PutError as error:
            if is_condition_failure(error):
                return False
            raise

    def mark_sent(self, team_id: str, notice: Notice, claim: str, message_id: str, now: datetime) -> bool:
        """Record the send under our claim; False when the claim was re-armed or taken over meanwhile."""
        item = NoticeStateItem(keys.alerts_pk(team_id), keys.notice_sk(notice))
        try:
            item.update(actions=[NoticeStateItem.sent.set(True), NoticeStateItem.sent_at.set(now),
                                 NoticeStateItem.message_id.set(message_id), NoticeStateItem.lease_until.remove()],
                        condition=NoticeStateItem.claim == claim)
            return True
        except UpdateError as error:
            if is_condition_failure(error):
                return False
            raise

    def rearm(self, team_id: str, notice: Notice, claim: str | None = None) -> None:
        """Absent means armed. With a claim, only delete that claim; without, any disarmed state."""
        item = NoticeStateItem(keys.alerts_pk(team_id), keys.notice_sk(notice))
        condition = (NoticeStateItem.claim == claim) if claim else (NoticeStateItem.armed == False)  # noqa: E712
        try:
            item.delete(condition=condition)
        except DeleteError as error:
            if not is_condition_failure(error):
                raise


def _get(pk: str, sk: str) -> LedgerItem | None:
    try:
        return LedgerItem.get(pk, sk, consistent_read=True)
    except LedgerItem.DoesNotExist:
        return None
