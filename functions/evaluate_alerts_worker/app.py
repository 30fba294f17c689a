"""Evaluate alerts, the worker: each SQS message is a batch of teams and the scheduled run's time;
evaluates each team as of that time. A team that fails fails its message after the others were
evaluated; the queue's redrive policy dead-letters it rather than deliver it again (a late retry
would act as of its old time on newer balances): the next hourly run evaluates its teams."""
import json

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from usage_ledger.bootstrap import container
from usage_ledger.service.alerting import EvaluationFailed, Outcome

logger = Logger()
metrics = Metrics()
# a batch that fails whole is reported item by item (the same retries), and its metrics still go out
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


def _add(total: Outcome, outcome: Outcome) -> None:
    for name, value in vars(outcome).items():
        setattr(total, name, getattr(total, name) + value)


def _record(total: Outcome):
    def handle(record: SQSRecord) -> None:
        try:
            _add(total, container().jobs.evaluate_teams(json.loads(record.body)))
        except EvaluationFailed as failed:
            _add(total, failed.outcome)
            raise

    return handle


@metrics.log_metrics
@logger.inject_lambda_context
def lambda_handler(event, context):
    total = Outcome()
    response = process_partial_response(event=event, record_handler=_record(total), processor=processor,
                                        context=context)
    for name, value in (("TeamsEvaluated", total.teams), ("AlertsSent", total.emails_sent),
                        ("AlertSendFailures", total.send_failures), ("TeamsFailed", total.failed_teams)):
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)
    logger.info("alerts evaluated", extra=vars(total))
    return response
