"""SQS: the accepted-events queue between POST /v1/events and the ingest function."""
from __future__ import annotations

from usage_ledger.adapters import aws


def send(queue_url: str, body: str) -> str:
    return aws.client("sqs").send_message(QueueUrl=queue_url, MessageBody=body)["MessageId"]
