"""boto3 clients, built lazily and once per container (tests start moto before the first call)."""
from __future__ import annotations

import threading
from typing import Any

import boto3
from botocore.config import Config

_CONFIG = Config(retries={"mode": "standard", "max_attempts": 5})
_clients: dict[str, Any] = {}
# building clients from boto3's default session is not thread-safe, and an ingest batch's first
# claims may ask for the DynamoDB client from several threads at once
_building = threading.Lock()


def client(service: str) -> Any:
    found = _clients.get(service)
    if found is None:
        with _building:
            found = _clients.get(service)
            if found is None:
                found = _clients[service] = boto3.client(service, config=_CONFIG)
    return found


def reset_clients() -> None:
    with _building:
        _clients.clear()
