"""Balance changed: evaluate the alerts of the teams a LedgerTable stream batch touched.

The template filters the stream to balance and subscription items (SK "RES#..."); the hourly sweep
over every team is EvaluateAlertsFunction's (functions/evaluate_alerts/).
"""
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from usage_ledger import clock
from usage_ledger.adapters.dynamodb.keys import team_of_stream_keys
from usage_ledger.bootstrap import container
from usage_ledger.service.alerting import Outcome

logger = Logger()
metrics = Metrics()
processor = BatchProcessor(event_type=EventType.DynamoDBStreams)


def _record(outcome: Outcome, done: dict[str, Exception | None]):
    """Each team of the batch is evaluated once; its records share the outcome (and a failure)."""
    now = clock.now()

    def handle(record: DynamoDBRecord) -> None:
        team_id = team_of_stream_keys((record.raw_event.get("dynamodb") or {}).get("Keys") or {})
        if team_id is None:
            return
        if team_id not in done:
            try:
                container().alerting.evaluate_team(team_id, now, outcome)
                done[team_id] = None
            except Exception as error:
                done[team_id] = error
        failed = done[team_id]
        if failed is not None:
            raise failed

    return handle


@metrics.log_metrics
@logger.inject_lambda_context
def lambda_handler(event, context):
    outcome = Outcome()
    response = process_partial_response(event=event, record_handler=_record(outcome, {}),
                                        processor=processor, context=context)
    metrics.add_metric(name="AlertsSent", unit=MetricUnit.Count, value=outcome.emails_sent)
    metrics.add_metric(name="AlertSendFailures", unit=MetricUnit.Count, value=outcome.send_failures)
    logger.info("alerts evaluated", extra={"teams": outcome.teams, "emails_sent": outcome.emails_sent})
    return response
