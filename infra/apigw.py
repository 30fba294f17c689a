"""A stand-in for API Gateway HTTP APIs: matches a request to a template route and builds the
payload-format-2.0 event Lambda would receive. Shared by the local gateway and the tests."""
from __future__ import annotations

import base64
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from infra.stack import Stack


@dataclass(frozen=True)
class Identity:
    """Who calls: a team user (JWT `sub`), the operator/producer (IAM), or nobody."""

    sub: str | None = None
    iam: bool = False
    # a verified JWT's claims as API Gateway passes them (strings); None: the default local claims
    claims: dict[str, str] | None = field(default=None, compare=False, hash=False)

    @classmethod
    def user(cls, sub: str, claims: dict[str, str] | None = None) -> Identity:
        return cls(sub=sub, claims=claims)

    @classmethod
    def operator(cls) -> Identity:
        return cls(iam=True)


ANONYMOUS = Identity()


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # template form, e.g. /v1/teams/{team_id}/balances
    function: str
    authorizer: str  # "AWS_IAM", "JWT" or "NONE" (a public route: the page)

    @property
    def route_key(self) -> str:
        return f"{self.method} {self.path}"

    def match(self, method: str, path: str) -> dict[str, str] | None:
        if method.upper() != self.method:
            return None
        pattern = re.escape(self.path)
        pattern = re.sub(r"\\{(\w+)\\\+\\}", r"(?P<\1>.+)", pattern)  # {proxy+}: the rest of the path
        pattern = "^" + re.sub(r"\\{(\w+)\\}", r"(?P<\1>[^/]+)", pattern) + "$"
        found = re.match(pattern, path)
        return found.groupdict() if found else None


def routes_of(stack: Stack) -> list[Route]:
    return [Route(method.upper(), path, function, auth) for method, path, function, auth in stack.http_routes()]


def find_route(routes: list[Route], method: str, path: str) -> tuple[Route, dict[str, str]] | None:
    # as API Gateway: a greedy path ({proxy+}) only when no other route matches
    for route in sorted(routes, key=lambda route: "+}" in route.path):
        params = route.match(method, path)
        if params is not None:
            return route, params
    return None


def http_event(
    route: Route,
    path: str,
    path_parameters: dict[str, str],
    *,
    identity: Identity,
    query: str = "",
    headers: dict[str, str] | None = None,
    body: bytes | str | None = None,
) -> dict[str, Any]:
    """The HTTP API v2 event for one request, with the authorizer context API Gateway adds.

    A JWT route without a user, or an IAM route without IAM identity, is refused by API Gateway
    before Lambda runs; the caller (gateway or test) decides whether to build the event anyway.
    Header names are lower case, as HTTP APIs pass them (CloudEvents' `ce-*` headers included).
    """
    headers = {key.lower(): value for key, value in (headers or {}).items()}
    now = time.time()
    if isinstance(body, str):
        body = body.encode()
    is_text = body is None or _is_text(headers.get("content-type", "application/json"))
    authorizer: dict[str, Any] | None = None
    if identity.iam:
        authorizer = {
            "iam": {
                "accessKey": "AKIALOCALOPERATOR",
                "accountId": "123456789012",
                "callerId": "AIDALOCALOPERATOR",
                "principalOrgId": None,
                "userArn": "arn:aws:iam::123456789012:user/operator",
                "userId": "AIDALOCALOPERATOR",
                "cognitoIdentity": None,
            }
        }
    elif identity.sub is not None:
        authorizer = {
            "jwt": {
                "claims": identity.claims or {"sub": identity.sub, "iss": "local", "aud": "usage-ledger"},
                "scopes": None,
            }
        }
    query_pairs = parse_qsl(query, keep_blank_values=True)
    query_parameters: dict[str, str] = {}
    for key, value in query_pairs:
        query_parameters[key] = f"{query_parameters[key]},{value}" if key in query_parameters else value
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route.route_key,
        "rawPath": path,
        "rawQueryString": query,
        "headers": headers,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "local",
            "domainName": "127.0.0.1",
            "domainPrefix": "local",
            "http": {
                "method": route.method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": headers.get("user-agent", "local"),
            },
            "requestId": uuid.uuid4().hex,
            "routeKey": route.route_key,
            "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
            "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": False,
    }
    if authorizer is not None:
        event["requestContext"]["authorizer"] = authorizer
    if query_parameters:
        event["queryStringParameters"] = query_parameters
    if path_parameters:
        event["pathParameters"] = path_parameters
    if body is not None:
        if is_text and _is_utf8(body):
            event["body"] = body.decode("utf-8")
        else:  # bytes that are not UTF-8 text reach the function as they were sent, never with U+FFFD
            event["body"] = base64.b64encode(body).decode()
            event["isBase64Encoded"] = True
    return event


def _is_utf8(body: bytes) -> bool:
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _is_text(content_type: str) -> bool:
    content_type = content_type.lower()
    return "json" in content_type or content_type.startswith("text/") or "form" in content_type
