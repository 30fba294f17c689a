"""Stripe's events (POST /v1/stripe/webhooks, no authorizer): verified by their Stripe-Signature,
each acted on once (usage_ledger.service.processor_events). The raw body is what the signature
covers, so it is read as sent, never parsed and re-serialized first."""
import base64

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging import correlation_paths
from usage_ledger import clock
from usage_ledger.bootstrap import container
from usage_ledger.domain.errors import LedgerError
from usage_ledger.http.api import PROBLEM_JSON, dumps, problem_body

logger = Logger()


def _result(status: int, body: str, content_type: str = "application/json") -> dict:
    return {"statusCode": status, "headers": {"Content-Type": content_type}, "isBase64Encoded": False, "body": body}


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
def lambda_handler(event, context):
    raw = event.get("body") or ""
    payload = base64.b64decode(raw) if event.get("isBase64Encoded") else raw.encode("utf-8")
    headers = {key.lower(): value for key, value in (event.get("headers") or {}).items()}
    try:
        answer = container().processor_events.receive(payload, headers.get("stripe-signature"), clock.now())
    except LedgerError as error:  # a bad signature (400), or an attempt under way / an outage (retried)
        return _result(error.status, problem_body(error.status, error.slug, error.title, error.detail), PROBLEM_JSON)
    except Exception:
        logger.exception("acting on a processor event failed; the processor redelivers it")
        return _result(500, problem_body(500, "internal-error", "Internal error",
                                         "Something went wrong; it has been logged."), PROBLEM_JSON)
    return _result(200, dumps(answer))
