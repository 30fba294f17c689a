"""Evaluate alerts: hourly over every team with alerts or api balances, or the teams a stream batch touched."""
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord

from usage_ledger import clock
from usage_ledger.service import alerting

logger = Logger()
metrics = Metrics()
processor = BatchProcessor(event_type=EventType.DynamoDBStreams)
TEAM_PREFIX = "TEAM#"


def _team_of(record: DynamoDBRecord) -> str | None:
    pk = ((record.raw_event.get("dynamodb") or {}).get("Keys") or {}).get("PK", {}).get("S", "")
    team_id = pk.removeprefix(TEAM_PREFIX)
    return team_id if pk.startswith(TEAM_PREFIX) and team_id and "#" not in team_id else None


def _record(outcome: alerting.Outcome, done: dict[str, Exception | None]):
    """Each team of the batch is evaluated once; its records share the outcome (and a failure)."""
    now = clock.now()

    def handle(record: DynamoDBRecord) -> None:
        team_id = _team_of(record)
        if team_id is None:
            return
        if team_id not in done:
            try:
                alerting.evaluate_team(team_id, now, outcome)
                done[team_id] = None
            except Exception as error:
                done[team_id] = error
        if done[team_id] is not None:
            raise done[team_id]

    return handle


@metrics.log_metrics
@logger.inject_lambda_context
def lambda_handler(event, context):
    if "Records" in event:
        outcome = alerting.Outcome()
        response = process_partial_response(event=event, record_handler=_record(outcome, {}),
                                            processor=processor, context=context)
    else:
        # as of the clock: the schedule only wakes it, and a projection is about now (a retried
        # run that starts late must not re-arm what a stream run just notified)
        outcome = alerting.evaluate(clock.now())
        response = {"teams": outcome.teams, "emails_sent": outcome.emails_sent}
    metrics.add_metric(name="AlertsSent", unit=MetricUnit.Count, value=outcome.emails_sent)
    metrics.add_metric(name="AlertSendFailures", unit=MetricUnit.Count, value=outcome.send_failures)
    logger.info("alerts evaluated", extra={"teams": outcome.teams, "emails_sent": outcome.emails_sent})
    return response
