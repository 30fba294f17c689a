"""Ingest: SQS batches of accepted usage events -> counted once, debited in consumption order."""
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from usage_ledger.adapters.queue import decode_message
from usage_ledger.bootstrap import container

logger = Logger()
metrics = Metrics()
processor = BatchProcessor(event_type=EventType.SQS)


def record_handler(record: SQSRecord) -> None:
    batch_id, events = decode_message(record.body, record.message_id)
    counted = container().ingest.apply_message(batch_id, events)
    metrics.add_metric(name="EventsIngested", unit=MetricUnit.Count, value=counted)
    metrics.add_metric(name="DuplicatesDropped", unit=MetricUnit.Count, value=len(events) - counted)


@metrics.log_metrics
@logger.inject_lambda_context
def lambda_handler(event, context):
    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
