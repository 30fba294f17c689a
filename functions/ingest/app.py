"""Ingest: SQS batches of accepted usage events -> counted once, debited in consumption order."""
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from usage_ledger.adapters.queue import decode_message
from usage_ledger.bootstrap import container
from usage_ledger.service.ingest import Applied, RetryLater

logger = Logger()
metrics = Metrics()
processor = BatchProcessor(event_type=EventType.SQS)


def count(applied: Applied) -> None:
    metrics.add_metric(name="EventsIngested", unit=MetricUnit.Count, value=applied.counted)
    metrics.add_metric(name="DuplicatesDropped", unit=MetricUnit.Count, value=applied.duplicates)
    # events that could not be applied, kept for an operator (docs/operations.md): alarm on > 0
    metrics.add_metric(name="EventsSetAside", unit=MetricUnit.Count, value=applied.set_aside)


def record_handler(record: SQSRecord) -> None:
    batch_id, events = decode_message(record.body, record.message_id)
    try:
        applied = container().ingest.apply_message(batch_id, events)
    except RetryLater as retry:  # some groups are applied; the message comes back for the rest
        count(retry.applied)
        raise
    count(applied)


@metrics.log_metrics
@logger.inject_lambda_context
def lambda_handler(event, context):
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
