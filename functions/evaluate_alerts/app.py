"""Evaluate alerts on the hourly schedule: every team with alerts or api balances.

Balance changes between runs reach BalanceChangedAlertsFunction (functions/balance_changed_alerts/)
through the LedgerTable stream; this function only serves the schedule.
"""
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from usage_ledger import clock
from usage_ledger.bootstrap import container

logger = Logger()
metrics = Metrics()


@metrics.log_metrics
@logger.inject_lambda_context
def lambda_handler(event, context):
    if isinstance(event, dict) and "Records" in event:  # a misrouted stream batch must not become a full sweep
        raise ValueError("EvaluateAlertsFunction serves the schedule; BalanceChangedAlertsFunction the stream")
    # as of the clock: the schedule only wakes it, and a projection is about now (a retried
    # run that starts late must not re-arm what a stream run just notified)
    outcome = container().alerting.evaluate(clock.now())
    metrics.add_metric(name="AlertsSent", unit=MetricUnit.Count, value=outcome.emails_sent)
    metrics.add_metric(name="AlertSendFailures", unit=MetricUnit.Count, value=outcome.send_failures)
    logger.info("alerts evaluated", extra={"teams": outcome.teams, "emails_sent": outcome.emails_sent})
    return {"teams": outcome.teams, "emails_sent": outcome.emails_sent}
