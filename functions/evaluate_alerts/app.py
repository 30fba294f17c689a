"""Evaluate alerts on the hourly schedule: lists every team with alerts or api balances (GSI1, every
page) and enqueues them, in batches, for EvaluateAlertsWorkerFunction (functions/
evaluate_alerts_worker/) with the scheduled event's `time`.

Balance changes between runs reach BalanceChangedAlertsFunction (functions/balance_changed_alerts/)
through the LedgerTable stream; this function only serves the schedule.
"""
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from usage_ledger.bootstrap import container
from usage_ledger.service.jobs import scheduled_time

logger = Logger()
metrics = Metrics()


@metrics.log_metrics
@logger.inject_lambda_context
def lambda_handler(event, context):
    if isinstance(event, dict) and "Records" in event:  # a misrouted stream batch must not become a full sweep
        raise ValueError("EvaluateAlertsFunction serves the schedule; BalanceChangedAlertsFunction the stream")
    now = scheduled_time(event)
    enqueued = container().jobs.enqueue_teams(now)
    metrics.add_metric(name="TeamsEnqueued", unit=MetricUnit.Count, value=enqueued.items)
    logger.info("teams enqueued for evaluation", extra={"now": now.isoformat(), "teams": enqueued.items,
                                                        "messages": enqueued.messages})
    return {"teams": enqueued.items, "messages": enqueued.messages}
