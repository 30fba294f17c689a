"""docs/invariants.md, checked from the stored items, the SES outbox and the API after a simulation."""
from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from decimal import Decimal
from typing import Any

from conftest import Identity
from harness import Simulation, sent_emails
from usage_ledger.domain.calendar import add_months


def check_all(sim: Simulation) -> list[str]:
    """Every broken invariant, as readable lines (empty when all hold)."""
    ledger = sim.scan("LedgerTable")
    dedupe = sim.scan("DedupeTable")
    problems: list[str] = []
    problems += check_balances(sim, ledger)
    problems += check_dedupe(sim, dedupe)
    problems += check_cycles_and_invoices(sim, ledger)
    problems += check_alert_states(sim, ledger)
    problems += check_api_answers(sim, ledger)
    problems += sim.round_problems
    return problems


def _by_team_resource(ledger: list[dict[str, Any]], entity: str) -> dict[tuple[str, str], list[dict[str, Any]]]:
    found: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for item in ledger:
        if item.get("entity") == entity and item["PK"].count("#") == 1:
            found[(item["team_id"], item["resource_id"])].append(item)
    return found


def check_balances(sim: Simulation, ledger: list[dict[str, Any]]) -> list[str]:
    """I1 usage conserved, I2 every charged unit in one place, I3 no prepaid period below zero."""
    problems = []
    balances = {key: items[0] for key, items in _by_team_resource(ledger, "balance").items()}
    subscriptions = _by_team_resource(ledger, "subscription")
    cycles: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for item in ledger:  # open cycles under RES#, closed ones moved to TEAM#<team>#CYCLE
        if item.get("entity") == "cycle":
            cycles[(item["team_id"], item["resource_id"])].append(item)
    for key in sorted(set(balances) | set(sim.expected)):
        where = f"{key[0]}/{key[1]}"
        balance = balances.get(key)
        if balance is None:
            problems.append(f"I1 {where}: accepted {sim.expected[key]} but there is no balance")
            continue
        size = sim.catalogue[key[1]][1]
        usage, pending = Decimal(balance["usage_total"]), Decimal(balance["pending_usage"])
        charged = int(balance["charged_units"])
        if usage != sim.expected.get(key, Decimal(0)):
            problems.append(f"I1 {where}: usage_total {usage} != distinct accepted usage {sim.expected.get(key)}")
        if usage != charged * size + pending or not Decimal(0) <= pending < size:
            problems.append(f"I1 {where}: usage {usage} != {charged} x {size} + pending {pending}")
        consumed = {period: int(units) for period, units in (balance.get("consumed") or {}).items()}
        payg, shortfall = int(balance.get("payg_units", 0)), int(balance.get("shortfall_units", 0))
        retired = int(balance.get("retired_units", 0))
        if charged != sum(consumed.values()) + retired + payg + shortfall:
            problems.append(f"I2 {where}: charged {charged} != debits {sum(consumed.values())} + retired {retired} "
                            f"+ payg {payg} + shortfall {shortfall}")
        cycle_units = sum(int(cycle.get("charged_units", 0)) for cycle in cycles.get(key, []))
        if payg != cycle_units:
            problems.append(f"I2 {where}: payg_units {payg} != units across its cycles {cycle_units}")
        quantities = {sub["subscription_id"]: int(sub["quantity"]) for sub in subscriptions.get(key, [])
                      if sub.get("quantity") is not None}
        for period, units in consumed.items():
            limit = quantities.get(period.split("@", 1)[0])
            if limit is None or not 0 <= units <= limit:
                problems.append(f"I3 {where}: period {period} debited {units} of {limit}")
    return problems


def check_dedupe(sim: Simulation, dedupe: list[dict[str, Any]]) -> list[str]:
    """I4: one claim per distinct (source, id) accepted, no more (a claim for a never-accepted event
    would mean a producer's refused request left a trace)."""
    claims = sum(1 for item in dedupe if item["PK"].startswith("EVENT#"))
    if claims != len(sim.accepted):
        return [f"I4 {claims} event claims stored for {len(sim.accepted)} distinct events accepted"]
    return []


def check_cycles_and_invoices(sim: Simulation, ledger: list[dict[str, Any]]) -> list[str]:
    """I5: every due cycle closed once, with one invoice when it has units; each invoice's attempts
    charged at most once each (counted at the processor), its status and the subscription's past_due
    set agreeing with its last attempt, and one email per attempt."""
    from usage_ledger.config import settings

    problems = []
    now = sim.clock()
    due_before = now - timedelta(minutes=settings().billing_grace_minutes)
    invoices = {item["invoice_id"]: item for item in ledger if item.get("entity") == "invoice"}
    subscriptions = [item for item in ledger if item.get("entity") == "subscription"]
    intents = _payment_intents(sim, {item["customer_id"] for item in subscriptions if item.get("customer_id")})
    past_due = {invoice_id for item in subscriptions for invoice_id in item.get("past_due") or ()}
    emails = sent_emails()
    billed: set[str] = set()
    for cycle in (item for item in ledger if item.get("entity") == "cycle"):
        where = f"cycle {cycle['SK']} of {cycle['team_id']}"
        units = int(cycle.get("charged_units", 0))
        due = cycle["ends_at"] <= due_before.strftime("%Y-%m-%dT%H:%M:%SZ")
        if due and cycle.get("status") != "closed":
            problems.append(f"I5 {where}: due since {cycle['ends_at']} but {cycle.get('status')}")
        if cycle.get("status") != "closed":
            continue
        invoice_id = cycle.get("invoice_id")
        if (units > 0) != bool(invoice_id):
            problems.append(f"I5 {where}: {units} units but invoice {invoice_id!r}")
            continue
        if not invoice_id:
            continue
        billed.add(invoice_id)
        invoice = invoices.get(invoice_id)
        if invoice is None:
            problems.append(f"I5 {where}: names invoice {invoice_id} which does not exist")
            continue
        line = invoice["lines"][0]
        if int(line["charged_units"]) != units or int(invoice["total"]) != units * int(line["unit_amount"]):
            problems.append(f"I5 {invoice_id}: bills {line['charged_units']} units / {invoice['total']} "
                            f"for a cycle of {units} units")
        problems += _attempts_and_emails(sim, invoice, intents, emails, past_due)
    for invoice_id in set(invoices) - billed:
        problems.append(f"I5 invoice {invoice_id} belongs to no closed cycle")
    attempted = {f"{invoice_id}#attempt-{n}" for invoice_id, invoice in invoices.items()
                 for n in range(1, int(invoice.get("attempt_count", 0)) + 1)}
    for key in set(intents) - attempted:
        problems.append(f"I5 a charge {key!r} that no recorded attempt names")
    sim.outcome.invoices = len(invoices)
    return problems


def check_alert_states(sim: Simulation, ledger: list[dict[str, Any]]) -> list[str]:
    """I6 after the clean final run: each window the projection is in was notified (claimed and sent);
    each window it is out of is armed again. The same for an api resource's low/exhausted notices."""
    problems = []
    states = {(item["PK"].split("#")[1], item["SK"]): item for item in ledger if item.get("entity") == "alert_state"}
    for team in sim.teams:
        cards = {card["resource_id"]: card for card in sim.api.get(
            f"/v1/teams/{team.team_id}/balances", as_=Identity.user(team.admin)).json["balances"]}
        expected: dict[str, bool] = {}  # state SK -> should be notified
        for resource_id in team.resources:
            card = cards.get(resource_id)
            days = card["days_remaining"] if card else None
            for window in (10, 5):
                expected[f"STATE#{team.alert_id}#{resource_id}#{window}"] = days is not None and days <= window
            if card and card["kind"] == "api":
                expected[f"STATE#API#{resource_id}#exhausted"] = card["status"] == "exhausted"
                if card["status"] != "exhausted":  # an exhausted resource keeps whatever its low notice was
                    expected[f"STATE#API#{resource_id}#low"] = card["status"] == "low"
        for sk, notified in expected.items():
            state = states.get((team.team_id, sk))
            if notified and not (state and state.get("armed") is False and state.get("sent") is True):
                problems.append(f"I6 {team.team_id} {sk}: in its window but the state is {state}")
            if not notified and state is not None:
                problems.append(f"I6 {team.team_id} {sk}: out of its window but not re-armed: {state}")
    return problems


def check_api_answers(sim: Simulation, ledger: list[dict[str, Any]]) -> list[str]:
    """What an admin sees agrees with the ledger: cards, usage over 24 months, invoices."""
    problems = []
    balances = {key: items[0] for key, items in _by_team_resource(ledger, "balance").items()}
    today = sim.clock().date()
    for team in sim.teams:
        admin = Identity.user(team.admin)
        reply = sim.api.get(f"/v1/teams/{team.team_id}/balances", as_=admin)
        for card in reply.json["balances"]:
            stored = balances.get((team.team_id, card["resource_id"]))
            if card["available"] < 0 or card["available"] > card["total"]:
                problems.append(f"I3 {team.team_id}/{card['resource_id']}: card shows {card['available']} of "
                                f"{card['total']}")
            if stored and (Decimal(str(card["pending_usage"])) != Decimal(stored["pending_usage"])
                           or card["shortfall_units"] != int(stored.get("shortfall_units", 0))):
                problems.append(f"API {team.team_id}/{card['resource_id']}: card disagrees with the balance")
        first = add_months(today, -24) + timedelta(days=1)
        usage = sim.api.get(f"/v1/teams/{team.team_id}/usage", as_=admin,
                            query=f"from={first}&to={today}&granularity=month&group_by=resource").json
        reported = {series["key"]["resource_id"]: sum(Decimal(str(p["quantity"])) for p in series["points"])
                    for series in usage["series"]}
        for (team_id, resource_id), total in sim.expected.items():
            if team_id == team.team_id and reported.get(resource_id, Decimal(0)) != total:
                problems.append(f"API {team_id}/{resource_id}: usage report sums to {reported.get(resource_id)}, "
                                f"accepted {total}")
        listed, cursor = set(), None
        while True:
            page = sim.api.get(f"/v1/teams/{team.team_id}/invoices", as_=admin,
                               query=f"limit=2&cursor={cursor}" if cursor else "limit=2").json
            listed |= {invoice["invoice_id"] for invoice in page["items"]}
            cursor = page["next_cursor"]
            if not cursor:
                break
        stored_ids = {item["invoice_id"] for item in ledger
                      if item.get("entity") == "invoice" and item["team_id"] == team.team_id}
        if listed != stored_ids:
            problems.append(f"API {team.team_id}: invoices listed {sorted(listed)} != stored {sorted(stored_ids)}")
    return problems


def _payment_intents(sim: Simulation, customers: set[str]) -> dict[str, list[Any]]:
    """This run's PaymentIntents at localstripe (its customers only), by their idempotency key."""
    import stripe

    from infra.localstripe import LOCAL_SECRET_KEY

    client = stripe.StripeClient(LOCAL_SECRET_KEY, base_addresses={"api": sim.stack.parameters["StripeApiBase"]}).v1
    found: dict[str, list[Any]] = defaultdict(list)
    for intent in client.payment_intents.list(params={"limit": 100}).auto_paging_iter():
        if intent.customer in customers:
            metadata = intent.metadata.to_dict() if intent.metadata else {}
            found[metadata.get("idempotency_key", "")].append(intent)
    return found


def _attempts_and_emails(sim: Simulation, invoice: dict[str, Any], intents: dict[str, list[Any]],
                         emails: list[Any], past_due: set[str]) -> list[str]:
    problems = []
    invoice_id, total = invoice["invoice_id"], int(invoice["total"])
    count, attempts = int(invoice.get("attempt_count", 0)), invoice.get("attempts") or []
    if total == 0:  # nothing to collect: issued paid, never sent to the processor, never emailed as a failure
        charged = [key for key in intents if key.startswith(f"{invoice_id}#")]
        if invoice["status"] != "paid" or count or attempts or charged or invoice_id in past_due:
            problems.append(f"I5 {invoice_id}: a total of 0 is {invoice['status']} with {count} attempts, "
                            f"{len(charged)} charges")
        if invoice.get("emailed") != "sent":  # emailed as the invoice, with no attempt
            problems.append(f"I5 {invoice_id}: a total of 0 not emailed ({invoice.get('emailed')!r})")
        return problems
    if count < 1 or len(attempts) != count:
        return [f"I5 {invoice_id}: {count} attempts counted, {len(attempts)} recorded "
                "(the last run makes every due one)"]
    for number, attempt in enumerate(attempts, start=1):
        charged = intents.get(f"{invoice_id}#attempt-{number}", [])
        if len(charged) > 1:
            problems.append(f"I5 {invoice_id}: attempt {number} charged {len(charged)} times")
        if any(int(intent.amount) != total for intent in charged):
            problems.append(f"I5 {invoice_id}: attempt {number} charged another amount than {total}")
        if attempt.get("succeeded") and not charged:
            problems.append(f"I5 {invoice_id}: attempt {number} succeeded without a charge at the processor")
    last_paid = bool(attempts[-1].get("succeeded"))
    if ((invoice["status"] == "paid") != last_paid
            or invoice["status"] not in ("paid", "payment_failed", "uncollectible")):
        problems.append(f"I5 {invoice_id}: status {invoice['status']} after a last attempt that "
                        f"{'paid' if last_paid else 'failed'}")
    if (invoice_id in past_due) != (invoice["status"] in ("payment_failed", "uncollectible")):
        problems.append(f"I5 {invoice_id}: status {invoice['status']} but past_due says {invoice_id in past_due}")
    copies = sum(1 for message in emails if invoice_id in message.subject or invoice_id in message.body)
    # a second copy only where a fault hit between SES taking this invoice's email and its record
    unrecorded = sum(1 for subject in sim.faults.unrecorded_subjects if invoice_id in subject)
    sent_all = invoice.get("emailed") == "sent" and int(invoice.get("email_attempt") or 0) == count
    if not sent_all or not count <= copies <= count + unrecorded:
        problems.append(f"I5 {invoice_id}: emailed={invoice.get('emailed')!r} for attempt "
                        f"{invoice.get('email_attempt')} of {count}, {copies} emails ({unrecorded} faults "
                        "between a send and its record)")
    return problems
