"""Close billing cycles, on the hourly schedule: lists the cycles due as of the scheduled event's
`time` and enqueues them, in batches, for CloseBillingCyclesWorkerFunction (functions/
close_billing_cycles_worker/), which closes them into invoices, charges and emails."""
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit
from usage_ledger.bootstrap import container
from usage_ledger.service.jobs import scheduled_time

logger = Logger()
metrics = Metrics()


@metrics.log_metrics
@logger.inject_lambda_context
def lambda_handler(event, context):
    now = scheduled_time(event)  # a late or retried run still bills as of its schedule
    enqueued = container().jobs.enqueue_due_cycles(now)
    metrics.add_metric(name="CyclesEnqueued", unit=MetricUnit.Count, value=enqueued.items)
    logger.info("due billing cycles enqueued", extra={"now": now.isoformat(), "cycles": enqueued.items,
                                                      "messages": enqueued.messages})
    return {"cycles": enqueued.items, "messages": enqueued.messages}
