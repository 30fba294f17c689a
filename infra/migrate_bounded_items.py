"""Issue 18 migration: rewrite data stored before bounded items into the new layout. Idempotent:
run it after deploying the new code (the old ingest stopped), and again whenever in doubt; every
step is a conditional write, so a second run, or a run after a crash, changes nothing done before.

    python -m infra.migrate_bounded_items --stack usage-ledger            # table names from the stack's outputs
    python -m infra.migrate_bounded_items --ledger-table L --usage-table U [--endpoint-url URL]
    LEDGER_TABLE=L USAGE_TABLE=U python -m infra.migrate_bounded_items    # or from the environment

Steps (each prints what it changed):
1. catalogue items without `entity` get `entity = resource` (pynamodb's discriminator; an item
   without it is invisible to the catalogue Query).
2. usage: the `u:<user>`/`a:<app>` attributes of each old day item are added to the share items
   (one per resource, user or app, and month: `quantity` and `dNN`) and removed from the day item
   in the same transaction (up to 99 attributes at a time, conditional on the first still being
   there: a chunk moves once); then the month items' copies of them (the same sums) are removed.
3. balances: `consumed` entries of periods past the horizon are pruned into `retired_units`
   (domain.ledger.pruned), conditional on the balance's version.
4. closed cycles leave `RES#`: a transaction deletes the cycle (conditional on it being closed)
   and puts it under `TEAM#<team>#CYCLE` with its invoice id.
5. members written before GET /v1/me get its index keys (GSI1 `USER#<user_id>` / team id), set
   only where they are missing and the member is still there: a member re-saved or removed
   meanwhile is left as it is.
6. (issue 25) each payg subscription's `closed_through` is the last cycle closed, for cycles
   closed before the close job wrote it: set only where higher.
Scans both tables once each (a one-off; budget read units for the tables' size).
"""
from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "shared"))

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

OLD_USER, OLD_APP = "u:", "a:"
CHUNK = 99  # share updates per transaction, beside the day item's own update

_serializer, _deserializer = TypeSerializer(), TypeDeserializer()


def _s(value: Any) -> dict[str, Any]:
    return _serializer.serialize(value)


def _scan(client: Any, table: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
    while True:
        page = client.scan(TableName=table, **kwargs)
        yield from page.get("Items", [])
        if "LastEvaluatedKey" not in page:
            return
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def _cancelled_on_condition(error: ClientError) -> bool:
    reasons = error.response.get("CancellationReasons") or []
    return error.response["Error"]["Code"] == "TransactionCanceledException" and any(
        reason.get("Code") == "ConditionalCheckFailed" for reason in reasons)


# ------------------------------------------------------------------ 1. catalogue


def tag_catalogue(client: Any, ledger_table: str) -> int:
    from usage_ledger.adapters.dynamodb import keys

    changed = 0
    query = {"KeyConditionExpression": "PK = :pk", "ExpressionAttributeValues": {":pk": _s(keys.CATALOGUE_PK)}}
    while True:
        page = client.query(TableName=ledger_table, **query)
        for item in page.get("Items", []):
            if "entity" in item:
                continue
            try:
                client.update_item(TableName=ledger_table, Key={"PK": item["PK"], "SK": item["SK"]},
                                   UpdateExpression="SET entity = :resource",
                                   ConditionExpression="attribute_exists(PK) AND attribute_not_exists(entity)",
                                   ExpressionAttributeValues={":resource": _s("resource")})
                changed += 1
            except ClientError as error:
                if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                    raise
        if "LastEvaluatedKey" not in page:
            return changed
        query["ExclusiveStartKey"] = page["LastEvaluatedKey"]


# ------------------------------------------------------------------ 2. usage


def _old_shares(item: dict[str, Any]) -> list[tuple[str, str, str | None, Decimal]]:
    """(attribute, group_by, key, quantity) of an old item's per-user and per-app attributes."""
    found = []
    for name, value in item.items():
        for prefix, group_by in ((OLD_USER, "user"), (OLD_APP, "app")):
            if name.startswith(prefix):
                found.append((name, group_by, name[len(prefix):] or None, Decimal(_deserializer.deserialize(value))))
    return sorted(found)


def migrate_usage(client: Any, usage_table: str) -> Counter[str]:
    from usage_ledger.adapters.dynamodb import keys
    from usage_ledger.adapters.dynamodb.usage import DAY_PREFIX, _expiry, _month_end

    done: Counter[str] = Counter()
    for item in _scan(client, usage_table):
        sk = item["SK"]["S"]
        shares = _old_shares(item)
        if not shares or not sk.startswith(("D#", "M#")):
            continue
        resource_id = sk.split("#")[1]
        period = keys.period_of_usage_sk(sk)
        key = {"PK": item["PK"], "SK": item["SK"]}
        for start in range(0, len(shares), CHUNK):
            chunk = shares[start:start + CHUNK]
            names = {f"#o{index}": name for index, (name, _, _, _) in enumerate(chunk)}
            own = {"Update": {"TableName": usage_table, "Key": key,
                              "UpdateExpression": "REMOVE " + ", ".join(names),
                              "ConditionExpression": "attribute_exists(#o0)",
                              "ExpressionAttributeNames": names}}
            if sk.startswith("M#"):  # the same sums as the month's day items: dropped, not moved
                try:
                    client.update_item(**own["Update"])
                    done["month item attributes removed"] += len(chunk)
                except ClientError as error:
                    if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                        raise
                continue
            month, day = period[:7], f"{DAY_PREFIX}{period[8:10]}"
            updates = [{"Update": {
                "TableName": usage_table,
                "Key": {"PK": item["PK"], "SK": _s(keys.usage_share_sk(group_by, resource_id, share_key, month))},
                "UpdateExpression": "ADD quantity :q, #d :q SET expires_at = :ttl, resource_id = :rid",
                "ExpressionAttributeNames": {"#d": day},
                "ExpressionAttributeValues": {":q": _s(quantity), ":ttl": _s(_expiry(_month_end(month))),
                                              ":rid": _s(resource_id)},
            }} for _, group_by, share_key, quantity in chunk]
            try:
                client.transact_write_items(TransactItems=[own, *updates])
                done["day item attributes moved"] += len(chunk)
            except ClientError as error:
                if not _cancelled_on_condition(error):
                    raise
    return done


# ------------------------------------------------------------------ 3. balances, 4. closed cycles


def prune_balances(now: datetime) -> int:
    from pynamodb.exceptions import PutError
    from usage_ledger.adapters.dynamodb import keys
    from usage_ledger.adapters.dynamodb.errors import is_condition_failure
    from usage_ledger.adapters.dynamodb.ledger import balance_of, subscription_of
    from usage_ledger.adapters.dynamodb.models import BalanceItem, LedgerItem, SubscriptionItem
    from usage_ledger.domain.ledger import pruned

    changed = 0
    for found in BalanceItem.scan():  # pynamodb filters on the discriminator
        for _ in range(8):
            item = BalanceItem.get(found.PK, found.SK, consistent_read=True)
            subscriptions = [subscription_of(sub) for sub in LedgerItem.query(
                found.PK, LedgerItem.SK.startswith(keys.resource_prefix(item.resource_id) + "SUB#"),
                consistent_read=True) if isinstance(sub, SubscriptionItem)]
            state = balance_of(item)
            after = pruned(state, subscriptions, now)
            if after == state:
                break
            item.consumed, item.retired_units = after.consumed, after.retired_units
            try:
                item.save()  # conditional on the version read
                changed += 1
                break
            except PutError as error:
                if not is_condition_failure(error):
                    raise
    return changed


def move_closed_cycles() -> int:
    from pynamodb.exceptions import TransactWriteError
    from pynamodb.transactions import TransactWrite
    from usage_ledger.adapters.dynamodb import keys
    from usage_ledger.adapters.dynamodb.errors import CONDITION_FAILED, cancellation_codes
    from usage_ledger.adapters.dynamodb.models import CycleItem, connection
    from usage_ledger.domain.billing import CLOSED

    moved = 0
    for item in CycleItem.scan(CycleItem.SK.startswith(keys.RESOURCE_PREFIX) & (CycleItem.status == CLOSED)):
        if not isinstance(item, CycleItem):
            continue
        archived = CycleItem(keys.closed_cycles_pk(item.team_id),
                             keys.closed_cycle_sk(item.resource_id, item.subscription_id, int(item.cycle_index)),
                             team_id=item.team_id, resource_id=item.resource_id, subscription_id=item.subscription_id,
                             cycle_index=item.cycle_index, cycle_start=item.cycle_start, cycle_end=item.cycle_end,
                             ends_at=item.ends_at, status=CLOSED, charged_units=item.charged_units,
                             invoice_id=item.invoice_id)
        try:
            with TransactWrite(connection=connection()) as transaction:
                transaction.delete(CycleItem(item.PK, item.SK), condition=CycleItem.status == CLOSED)
                transaction.save(archived)
            moved += 1
        except TransactWriteError as error:
            if CONDITION_FAILED not in cancellation_codes(error):
                raise
    return moved


def mark_closed_through() -> int:
    """Issue 25: each payg subscription learns the last cycle closed before the close wrote
    `closed_through` (the highest index under `TEAM#<team>#CYCLE`): set only where it is higher, so a
    later close (which sets it itself) is never undone."""
    from pynamodb.exceptions import UpdateError
    from usage_ledger.adapters.dynamodb import keys
    from usage_ledger.adapters.dynamodb.errors import is_condition_failure
    from usage_ledger.adapters.dynamodb.models import CycleItem, SubscriptionItem
    from usage_ledger.domain.billing import CLOSED

    last: dict[tuple[str, str, str], int] = {}
    for item in CycleItem.scan(~CycleItem.SK.startswith(keys.RESOURCE_PREFIX) & (CycleItem.status == CLOSED)):
        if isinstance(item, CycleItem):
            key = (item.team_id, item.resource_id, item.subscription_id)
            last[key] = max(last.get(key, -1), int(item.cycle_index))
    marked = 0
    for (team_id, resource_id, subscription_id), index in sorted(last.items()):
        subscription = SubscriptionItem(keys.team_pk(team_id), keys.subscription_sk(resource_id, subscription_id))
        try:
            subscription.update(actions=[SubscriptionItem.closed_through.set(index)],
                                condition=SubscriptionItem.SK.exists() & (
                                    SubscriptionItem.closed_through.does_not_exist()
                                    | (SubscriptionItem.closed_through < index)))
            marked += 1
        except UpdateError as error:
            if not is_condition_failure(error):
                raise
    return marked


def index_members(client: Any, ledger_table: str) -> int:
    from usage_ledger.adapters.dynamodb import keys

    indexed = 0
    for item in _scan(client, ledger_table, FilterExpression="entity = :member AND attribute_not_exists(GSI1PK)",
                      ExpressionAttributeValues={":member": _s("member")}):
        user_id, team_id = _deserializer.deserialize(item["user_id"]), _deserializer.deserialize(item["team_id"])
        try:
            client.update_item(
                TableName=ledger_table, Key={"PK": item["PK"], "SK": item["SK"]},
                UpdateExpression="SET GSI1PK = :user, GSI1SK = :team",
                ConditionExpression="attribute_exists(PK) AND attribute_not_exists(GSI1PK)",
                ExpressionAttributeValues={":user": _s(keys.user_gsi1pk(user_id)), ":team": _s(team_id)})
            indexed += 1
        except ClientError as error:
            if error.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
    return indexed


# ------------------------------------------------------------------ the run


def stack_tables(stack_name: str) -> tuple[str, str]:
    import boto3

    [stack] = boto3.client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"]
    outputs = {output["OutputKey"]: output["OutputValue"] for output in stack.get("Outputs", [])}
    return outputs["LedgerTableName"], outputs["UsageTableName"]


def run(ledger_table: str, usage_table: str, now: datetime | None = None) -> dict[str, Any]:
    from usage_ledger.adapters import aws
    from usage_ledger.adapters.dynamodb import models

    models.bind(ledger_table, os.environ.get("DEDUPE_TABLE", models.UNBOUND))
    client = aws.client("dynamodb")
    now = now or datetime.now(UTC)
    return {
        "catalogue_items_tagged": tag_catalogue(client, ledger_table),
        "usage": dict(migrate_usage(client, usage_table)),
        "balances_pruned": prune_balances(now),
        "closed_cycles_moved": move_closed_cycles(),
        "subscriptions_closed_through": mark_closed_through(),
        "members_indexed": index_members(client, ledger_table),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", help="read LedgerTableName and UsageTableName from this stack's outputs")
    parser.add_argument("--ledger-table", default=os.environ.get("LEDGER_TABLE"))
    parser.add_argument("--usage-table", default=os.environ.get("USAGE_TABLE"))
    parser.add_argument("--endpoint-url", help="a DynamoDB endpoint other than AWS's (the local moto server)")
    args = parser.parse_args(argv)
    if args.endpoint_url:
        os.environ["AWS_ENDPOINT_URL_DYNAMODB"] = args.endpoint_url
    ledger_table, usage_table = (stack_tables(args.stack) if args.stack else (args.ledger_table, args.usage_table))
    if not ledger_table or not usage_table:
        parser.error("give --stack, or --ledger-table and --usage-table (or LEDGER_TABLE and USAGE_TABLE)")
    print(run(ledger_table, usage_table))


if __name__ == "__main__":
    main()
