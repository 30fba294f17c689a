"""Environment parsed once into a settings object (names come from template.yaml)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True)
class Settings:
    ledger_table: str
    usage_table: str
    dedupe_table: str
    events_queue_url: str
    sender_email: str
    billing_grace_minutes: int
    entitlement_max_age_seconds: int
    portal_base_url: str
    stripe_api_base: str = "https://api.stripe.com"
    stripe_secret_name: str = "usage-ledger/stripe"
    stripe_publishable_key: str = "pk_test_local"
    stripe_webhook_secret_name: str = "usage-ledger/stripe-webhook"
    billing_work_queue_url: str = ""
    alerts_work_queue_url: str = ""
    issuer_name: str = "Usage Ledger Example Ltd."
    issuer_address: str = "1 Example Street, Springfield 00000, United States"


@lru_cache(maxsize=1)
def settings() -> Settings:
    env = os.environ
    return Settings(
        ledger_table=env["LEDGER_TABLE"],
        usage_table=env["USAGE_TABLE"],
        dedupe_table=env["DEDUPE_TABLE"],
        events_queue_url=env.get("EVENTS_QUEUE_URL", ""),
        sender_email=env.get("SENDER_EMAIL", "billing@example.com"),
        billing_grace_minutes=int(env.get("BILLING_GRACE_MINUTES", "60")),
        entitlement_max_age_seconds=int(env.get("ENTITLEMENT_MAX_AGE_SECONDS", "5")),
        portal_base_url=env.get("PORTAL_BASE_URL", "http://127.0.0.1:3000").rstrip("/"),
        stripe_api_base=env.get("STRIPE_API_BASE", "https://api.stripe.com"),
        stripe_secret_name=env.get("STRIPE_SECRET_NAME", "usage-ledger/stripe"),
        stripe_publishable_key=env.get("STRIPE_PUBLISHABLE_KEY", "pk_test_local"),
        stripe_webhook_secret_name=env.get("STRIPE_WEBHOOK_SECRET_NAME", Settings.stripe_webhook_secret_name),
        billing_work_queue_url=env.get("BILLING_WORK_QUEUE_URL", ""),
        alerts_work_queue_url=env.get("ALERTS_WORK_QUEUE_URL", ""),
        issuer_name=env.get("ISSUER_NAME") or Settings.issuer_name,
        issuer_address=env.get("ISSUER_ADDRESS") or Settings.issuer_address,
    )
