"""Every key of the three tables, in one place (docs/data-model.md shows the same layout).

Ids never contain '#' (the edge's identifier pattern), so '#' separates key parts unambiguously.
"""
from __future__ import annotations

from usage_ledger.domain.alert import ApiNotice, Notice, WindowNotice
from usage_ledger.domain.ids import stable_hash

# ------------------------------------------------------------------ LedgerTable
CATALOGUE_PK = "CATALOGUE"
TEAM_META_SK = "META"
RESOURCE_PREFIX = "RES#"  # everything a balance card needs; the stream filter wakes alerts on it

# GSI1 partitions
TEAMS_INDEX = "TEAM"  # every team
OPEN_CYCLES = "CYCLE#OPEN"  # cycles not yet closed, sorted by their end (the due-cycle index)
API_RESOURCES_INDEX = "APIBAL"  # every (team, api resource): the scheduled alert run's api notices
ALERTS_INDEX = "ALERT"  # every alert
PAYMENTS_DUE = "PAYMENTS_DUE"  # invoices with work left (an attempt or its email), sorted by when it is due
USER_PREFIX = "USER#"  # USER#<user_id>: the teams a user is a member of (GSI1SK = team id), for GET /v1/me
GSI1 = "GSI1"


def catalogue_sk(resource_id: str) -> str:
    return f"RESOURCE#{resource_id}"


def team_pk(team_id: str) -> str:
    return f"TEAM#{team_id}"


MEMBER_PREFIX = "MEMBER#"


def member_sk(user_id: str) -> str:
    return f"{MEMBER_PREFIX}{user_id}"


def user_gsi1pk(user_id: str) -> str:
    return f"{USER_PREFIX}{user_id}"


def app_sk(app_id: str) -> str:
    return f"APP#{app_id}"


def subscription_id_sk(subscription_id: str) -> str:
    """The guard that makes a subscription id unique within its team across resources."""
    return f"SUBID#{subscription_id}"


def resource_prefix(resource_id: str) -> str:
    return f"{RESOURCE_PREFIX}{resource_id}#"


def balance_sk(resource_id: str) -> str:
    return f"{RESOURCE_PREFIX}{resource_id}#BAL"


def subscription_sk(resource_id: str, subscription_id: str) -> str:
    return f"{RESOURCE_PREFIX}{resource_id}#SUB#{subscription_id}"


def cycle_sk(resource_id: str, subscription_id: str, index: int) -> str:
    return f"{cycles_prefix(resource_id, subscription_id)}{index:06d}"


def cycles_prefix(resource_id: str, subscription_id: str) -> str:
    """Every open cycle of one payg subscription (begins_with)."""
    return f"{RESOURCE_PREFIX}{resource_id}#CYCLE#{subscription_id}#"


def closed_cycles_pk(team_id: str) -> str:
    """Closed cycles leave the team's `RES#` range (read by every card and ingest apply) for
    their own partition, with their invoice link."""
    return f"TEAM#{team_id}#CYCLE"


def closed_cycle_sk(resource_id: str, subscription_id: str, index: int) -> str:
    return f"{resource_id}#{subscription_id}#{index:06d}"


def api_resource_gsi1sk(team_id: str, resource_id: str) -> str:
    return f"{team_id}#{resource_id}"


def alert_gsi1sk(team_id: str, alert_id: str) -> str:
    return f"{team_id}#{alert_id}"


def team_of_gsi1sk(gsi1sk: str) -> str:
    """GSI1SK of the api-resource and alert indexes is "<team>#<...>"."""
    return gsi1sk.split("#", 1)[0]


def invoice_pk(team_id: str) -> str:
    return f"TEAM#{team_id}#INVOICE"


INVOICE_PREFIX = "in_"
INVOICE_COUNTER_SK = "NUMBER"  # in the invoice partition; never starts with INVOICE_PREFIX
CREDIT_NOTE_COUNTER_SK = "CREDIT_NOTE_NUMBER"  # the credit notes' own sequence, beside it
CREDIT_NOTE_PREFIX = "CN#"


def credit_note_sk(credit_note_id: str) -> str:
    """In the invoice partition (a team's credit note ids are unique across its invoices)."""
    return f"{CREDIT_NOTE_PREFIX}{credit_note_id}"


def team_of_invoice_pk(pk: str) -> str:
    return pk.removeprefix("TEAM#").removesuffix("#INVOICE")


def alerts_pk(team_id: str) -> str:
    return f"TEAM#{team_id}#ALERT"


ALERT_PREFIX = "ALERT#"
NOTICE_PREFIX = "STATE#"


def alert_sk(alert_id: str) -> str:
    return f"{ALERT_PREFIX}{alert_id}"


def alert_config_sk(config_hash: str) -> str:
    return f"CONFIG#{config_hash}"


def alert_notices_prefix(alert_id: str) -> str:
    return f"{NOTICE_PREFIX}{alert_id}#"


def notice_sk(notice: Notice) -> str:
    if isinstance(notice, WindowNotice):
        return f"{NOTICE_PREFIX}{notice.alert_id}#{notice.resource_id}#{notice.window}"
    assert isinstance(notice, ApiNotice)
    return f"{NOTICE_PREFIX}API#{notice.resource_id}#{notice.status}"


SET_ASIDE_PK = "SETASIDE"  # events ingest could not apply: one partition, listed by one Query


def set_aside_sk(batch_id: str, team_id: str | None, resource_id: str | None) -> str:
    """One item per (batch, team, resource) set aside; `#UNSTORABLE` for events that could not even
    be keyed (their strings are not valid Unicode)."""
    if team_id is None or resource_id is None:
        return f"{batch_id}#UNSTORABLE"
    return f"{batch_id}#{team_id}#{resource_id}"


def team_of_stream_keys(keys: dict) -> str | None:
    """The team whose partition a stream record is about (`Keys` in DynamoDB JSON), or None."""
    pk = (keys or {}).get("PK", {}).get("S", "")
    team_id = pk.removeprefix("TEAM#")
    return team_id if pk.startswith("TEAM#") and team_id and "#" not in team_id else None


# ------------------------------------------------------------------ DedupeTable
def event_marker_pk(source: str, event_id: str) -> str:
    """One marker per (source, id) for the life of the data."""
    return "EVENT#" + stable_hash(source, event_id, length=40)


def applied_marker_pk(batch_id: str, team_id: str, resource_id: str, chunk: int) -> str:
    """One marker per (batch, team, resource, chunk) applied: a replay finds it and skips."""
    return f"APPLIED#{batch_id}#{team_id}#{resource_id}#{chunk}"


# ------------------------------------------------------------------ UsageTable (PK = team_id)
def usage_period_sk(granularity: str, resource_id: str, period: str) -> str:
    return f"{'D' if granularity == 'day' else 'M'}#{resource_id}#{period}"


def period_of_usage_sk(sk: str) -> str:
    return sk.rsplit("#", 1)[1]


# A share item (per user or app and UTC month) sorts by key as the report's series do: by key as
# Python compares strings (code points, which is DynamoDB's UTF-8 byte order), usage without a
# key last. The key is followed by "!" and the month; characters up to '"' are escaped as '"'
# and one letter, so "!" sorts before any character of a key and a key before its extensions.
SHARE_GROUPS = {"user": "U", "app": "A"}
_SEPARATOR, _ESCAPE = "!", '"'


def _escaped(key: str) -> str:
    return "".join(_ESCAPE + chr(0x40 + ord(char)) if char <= _ESCAPE else char for char in key)


def _unescaped(text: str) -> str:
    out, chars = [], iter(text)
    for char in chars:
        out.append(chr(ord(next(chars)) - 0x40) if char == _ESCAPE else char)
    return "".join(out)


def _shares_prefix(group_by: str, resource_id: str) -> str:
    return f"{SHARE_GROUPS[group_by]}#{resource_id}#"


def usage_share_sk(group_by: str, resource_id: str, key: str | None, month: str) -> str:
    """`U#<resource>#K<key>!<YYYY-MM>` (A# for apps); `...#N!<YYYY-MM>` for usage without a key."""
    body = "N" if key is None else "K" + _escaped(key)
    return f"{_shares_prefix(group_by, resource_id)}{body}{_SEPARATOR}{month}"


def usage_shares_after(group_by: str, resource_id: str, after: str | None) -> str:
    """The lowest sort key of the share items of keys after `after` (all keys when None)."""
    prefix = _shares_prefix(group_by, resource_id) + "K"
    return prefix if after is None else prefix + _escaped(after) + _ESCAPE


def usage_shares_end(group_by: str, resource_id: str) -> str:
    """Above every share item of the resource (the no-key items included)."""
    return _shares_prefix(group_by, resource_id) + "O"


def share_of_usage_sk(sk: str) -> tuple[str | None, str]:
    """(key, month) of a share item's sort key (the inverse of usage_share_sk)."""
    body = sk.split("#", 2)[2]
    month = body[-7:]
    return (None if body[0] == "N" else _unescaped(body[1:-8])), month


def cycle_ref_of(pk: str, sk: str) -> tuple[str, str, str, int]:
    """(team_id, resource_id, subscription_id, index) of a cycle's keys (the inverse of cycle_sk)."""
    resource_part, subscription_id, index = sk.removeprefix(RESOURCE_PREFIX).rsplit("#", 2)
    resource_id = resource_part.removesuffix("#CYCLE")
    return pk.removeprefix("TEAM#"), resource_id, subscription_id, int(index)


def notice_of_sk(sk: str) -> Notice:
    """The notice a state item is about (the inverse of notice_sk)."""
    parts = sk.removeprefix(NOTICE_PREFIX).split("#")
    if parts[0] == "API":
        return ApiNotice(parts[1], parts[2])
    return WindowNotice(parts[0], parts[1], int(parts[2]))
