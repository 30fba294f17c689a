"""Ingest: SQS FIFO batches of accepted usage events -> counted once, debited in consumption order.

One apply per (team, resource) of the batch (its FIFO message group): the messages of a group are
folded into one commit. Failures are reported per message (ReportBatchItemFailures) in FIFO order:
once a message of a group fails, the later messages of that group in the batch fail too, and
they come back after a short backoff (retry.redelivery_delay) rather than the visibility timeout.
"""
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from usage_ledger.adapters.queue import decode_message
from usage_ledger.bootstrap import container
from usage_ledger.service.ingest import BatchOutcome, Message

logger = Logger()
metrics = Metrics()


def count(outcome: BatchOutcome) -> None:
    metrics.add_metric(name="EventsIngested", unit=MetricUnit.Count, value=outcome.counted)
    metrics.add_metric(name="DuplicatesDropped", unit=MetricUnit.Count, value=outcome.duplicates)
    # events that could not be applied, kept for an operator (docs/operations.md): alarm on > 0
    metrics.add_metric(name="EventsSetAside", unit=MetricUnit.Count, value=outcome.set_aside)
    metrics.add_metric(name="VersionConflicts", unit=MetricUnit.Count, value=outcome.races)


def messages_of(records: list[dict]) -> tuple[list[Message], list[str]]:
    """The batch's messages in order, and the ids of those that cannot be read (failed, with
    every later message of their group)."""
    messages, unreadable, blocked = [], [], set()
    for record in records:
        attributes = record.get("attributes") or {}
        group = attributes.get("MessageGroupId")
        if group is not None and group in blocked:
            unreadable.append(record["messageId"])
            continue
        try:
            batch_id, events = decode_message(record["body"], record["messageId"])
        except Exception:
            logger.exception("an events message cannot be read", extra={"message_id": record["messageId"]})
            unreadable.append(record["messageId"])
            if group is not None:
                blocked.add(group)
            continue
        messages.append(Message(record["messageId"], batch_id, events, group,
                                int(attributes.get("ApproximateReceiveCount") or 1)))
    return messages, unreadable


@metrics.log_metrics
@logger.inject_lambda_context
def lambda_handler(event, context):
    messages, unreadable = messages_of(event.get("Records") or [])
    outcome = container().ingest.apply_batch(messages)
    count(outcome)
    failed = set(outcome.failed) | set(unreadable)
    failures = [record for record in event.get("Records") or [] if record["messageId"] in failed]
    if failures:  # a FIFO group waits behind them: back off, briefly
        container().event_queue.redeliver_soon(failures)
    return {"batchItemFailures": [{"itemIdentifier": record["messageId"]} for record in failures]}
