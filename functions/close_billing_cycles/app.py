"""Close billing cycles: on a schedule, closes due Pay-as-You-Go cycles into invoices, charges and emails."""
from datetime import datetime

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from usage_ledger import clock
from usage_ledger.bootstrap import container
from usage_ledger.domain.calendar import parse_instant

logger = Logger()
metrics = Metrics()


def event_time(event: dict) -> datetime:
    """The scheduled event's `time` (a late or retried run still bills as of its schedule), else the clock."""
    raw = (event or {}).get("time")
    if isinstance(raw, str):
        try:
            return parse_instant(raw)
        except ValueError:
            logger.warning("event time is not RFC 3339; using the clock", extra={"time": raw})
    return clock.now()


@metrics.log_metrics
@logger.inject_lambda_context
def lambda_handler(event, context):
    now = event_time(event)
    summary = container().billing.close_due_cycles(now)
    metrics.add_metric(name="InvoicesIssued", unit=MetricUnit.Count, value=summary["invoiced"])
    metrics.add_metric(name="PaymentsFailed", unit=MetricUnit.Count, value=summary["payments_failed"])
    logger.info("billing cycles closed", extra={"now": now.isoformat(), **summary})
    return summary
