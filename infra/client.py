"""A small HTTP client for the local stack: as a team user (X-Local-User) or the operator."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: Any


def call(
    base_url: str,
    method: str,
    path: str,
    *,
    user: str | None = None,
    operator: bool = False,
    body: Any = None,
    content_type: str = "application/json",
) -> Reply:
    """One HTTP request as a team user (`X-Local-User`) or as the operator (`X-Local-Operator`)."""
    headers = {"Accept": "application/json"}
    if user:
        headers["X-Local-User"] = user
    if operator:
        headers["X-Local-Operator"] = "1"
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = content_type
    request = urllib.request.Request(base_url + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            status, raw, reply_headers = response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as error:
        status, raw, reply_headers = error.code, error.read(), dict(error.headers)
    try:
        parsed = json.loads(raw) if raw else None
    except ValueError:
        parsed = raw.decode(errors="replace")
    return Reply(status, {key.lower(): value for key, value in reply_headers.items()}, parsed)
