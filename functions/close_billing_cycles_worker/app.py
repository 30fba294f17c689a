"""Close billing cycles, the worker: each SQS message is a batch of due cycles and the scheduled
run's time; closes each as of that time. A cycle that fails stays due and fails its message, which
SQS delivers again (the cycles already closed are skipped then: each is closed once)."""
import json

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from usage_ledger.bootstrap import container
from usage_ledger.service.billing import CloseSummary

logger = Logger()
metrics = Metrics()
# a batch that fails whole is reported item by item (the same retries), and its metrics still go out
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


class CyclesLeftDue(Exception):
    """Some cycle of the message failed and stays due: the message comes back."""


def _record(total: CloseSummary):
    def handle(record: SQSRecord) -> None:
        summary = container().jobs.close_cycles(json.loads(record.body))
        for name, value in vars(summary).items():
            setattr(total, name, getattr(total, name) + value)
        if summary.failed:
            raise CyclesLeftDue(f"{summary.failed} cycle(s) of the message stay due")

    return handle


@metrics.log_metrics
@logger.inject_lambda_context
def lambda_handler(event, context):
    total = CloseSummary()
    response = process_partial_response(event=event, record_handler=_record(total), processor=processor,
                                        context=context)
    for name, value in (("CyclesClosed", total.closed), ("InvoicesIssued", total.invoiced),
                        ("PaymentAttempts", total.attempts), ("InvoicesPaid", total.paid),
                        ("PaymentsFailed", total.payments_failed), ("CyclesFailed", total.failed),
                        ("CyclesSkipped", total.skipped)):  # skipped: another worker holds its lease
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
    logger.info("billing cycles closed", extra=vars(total))
    return response
