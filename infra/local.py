"""Local runner: moto + template deploy + an HTTP API gateway (with its JWT authorizer) + an OIDC
provider standing in for JwtIssuer + event-source pollers, one process."""

from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import boto3
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from infra.apigw import ANONYMOUS, Identity, Route, find_route, http_event, routes_of
from infra.demo import MEMBERS, load_demo
from infra.jwt_authorizer import JwtAuthorizer, Unauthorized, claim_strings
from infra.lambdas import load_handler
from infra.localstripe import register_webhook, start_localstripe
from infra.mime import read_mime
from infra.moto_server import MOTO_LOCK, start_moto_server
from infra.oidc import start_oidc_provider
from infra.pollers import BackgroundPollers, invoke, schedule_sources, scheduled_event
from infra.stack import Stack, deploy

log = logging.getLogger("infra.local")

ACCOUNT_ID = "123456789012"
REGION = "us-east-1"


def configure_aws_environment(endpoint_url: str | None = None) -> None:
    """Fake credentials and region (and the moto endpoint), before any boto3 client exists."""
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        os.environ.pop(name, None)  # a real profile must never leak into a local run
    os.environ["AWS_ACCESS_KEY_ID"] = "testing"
    os.environ["AWS_SECRET_ACCESS_KEY"] = "testing"
    os.environ["AWS_DEFAULT_REGION"] = REGION
    os.environ["AWS_REGION"] = REGION
    os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")  # no X-Ray daemon locally
    if endpoint_url:
        os.environ["AWS_ENDPOINT_URL"] = endpoint_url


def apply_function_environment(stack: Stack) -> None:
    """All functions share this process, so os.environ gets the union of their environments."""
    merged: dict[str, str] = {}
    for logical in stack.functions():
        for key, value in stack.function_environment(logical).items():
            if key in merged and merged[key] != value:
                log.warning("env %s differs between functions (%r vs %r); keeping the first", key, merged[key], value)
                continue
            merged[key] = value
    os.environ.update(merged)


def one_at_a_time(handler: Callable[..., Any]) -> Callable[..., Any]:
    """One container per function: invocations queue for it, as they would for a function with a
    reserved concurrency of 1 (the gateway serves requests on several threads)."""
    lock = threading.Lock()

    def invoke(event: Any, context: Any) -> Any:
        with lock:
            return handler(event, context)

    return invoke


def load_handlers(stack: Stack) -> tuple[dict[str, Callable[..., Any]], dict[str, str]]:
    """Import every function's handler; returns (handlers, load errors by logical id)."""
    handlers: dict[str, Callable[..., Any]] = {}
    errors: dict[str, str] = {}
    for logical in stack.functions():
        try:
            handlers[logical] = one_at_a_time(load_handler(stack, logical))
        except Exception as error:  # noqa: BLE001 - keep serving the functions that do load
            sys.modules.pop(f"lambda_{logical}", None)  # a half-imported module must not be reused
            errors[logical] = f"{type(error).__name__}: {error}"
            log.error("cannot load %s: %s", logical, errors[logical])
    return handlers, errors


# ------------------------------------------------------------------------------ identity


def is_operator(headers: Any) -> bool:
    """X-Local-Operator (local shortcut) or a SigV4 Authorization header: an IAM caller."""
    flag = headers.get("X-Local-Operator", "").strip().lower() in {"1", "true", "yes"}
    return flag or headers.get("Authorization", "").startswith("AWS4-HMAC-SHA256")


def team_user(headers: Any, authorizer: JwtAuthorizer | None) -> Identity:
    """The caller of a JWT route: the X-Local-User shortcut (local only, for curl and tests), or the
    `sub` of the Authorization header's JWT, verified as API Gateway's JWT authorizer does.
    Raises Unauthorized (401) otherwise."""
    local_user = headers.get("X-Local-User")
    if local_user:
        return Identity.user(local_user)
    if authorizer is None:
        raise Unauthorized("no JWT issuer configured")
    claims = authorizer.claims(headers.get("Authorization"))
    return Identity.user(str(claims["sub"]), claim_strings(claims))


# ------------------------------------------------------------------------------- emails


def sent_emails(region: str = REGION) -> list[dict[str, Any]]:
    """What moto SES (v1 and v2 share one store) has sent, oldest first, as plain dicts.

    Read straight from moto's in-process backend: the runner hosts the moto server itself.
    """
    from moto.ses.models import RawMessage, TemplateMessage, ses_backends

    with MOTO_LOCK:
        messages = list(ses_backends[ACCOUNT_ID][region].sent_messages)
    emails = []
    for message in messages:
        if isinstance(message, RawMessage):
            emails.append(_raw_email(message))
        elif isinstance(message, TemplateMessage):
            emails.append(
                {
                    "id": message.id,
                    "source": message.source,
                    "to": _addresses(message.destinations),
                    "template": message.template,
                    "template_data": message.template_data,
                }
            )
        elif hasattr(message, "subject"):
            # moto keeps only one body: the HTML one when both were sent
            body = message.body or ""
            html = "<" in body and "</" in body
            emails.append(
                {
                    "id": message.id,
                    "source": message.source,
                    "to": _addresses(message.destinations),
                    "subject": message.subject,
                    "text": None if html else body,
                    "html": body if html else None,
                }
            )
    return emails


def _addresses(destinations: Any) -> list[str]:
    if isinstance(destinations, dict):
        found: list[str] = []
        for key in ("ToAddresses", "CcAddresses", "BccAddresses"):
            value = destinations.get(key) or []
            found.extend(value.values() if isinstance(value, dict) else value)
        return found
    return list(destinations or [])


def _raw_email(message: Any) -> dict[str, Any]:
    mime = read_mime(message.raw_data)
    return {
        "id": message.id,
        "source": message.source,
        "to": list(dict.fromkeys(message.destinations)),  # moto lists To-header recipients twice
        "subject": mime.subject,
        "text": mime.text,
        "html": mime.html,
        "attachments": [{"filename": part.filename, "content_type": part.content_type} for part in mime.attachments],
    }


# ------------------------------------------------------------------------------ gateway


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(body, default=str), status=status, headers=headers, content_type="application/json")


def lambda_response(result: Any) -> Response:
    """Turn a Lambda result into an HTTP response, the way HTTP API payload 2.0 does."""
    if not isinstance(result, dict) or "statusCode" not in result:
        # API Gateway's inference for results without a statusCode: 200 with the JSON
        return _json(200, result)
    body = result.get("body") or ""
    data = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode("utf-8")
    response = Response(data, status=int(result["statusCode"]))
    response.headers.pop("Content-Type", None)  # only what the function set
    for name, value in (result.get("headers") or {}).items():
        response.headers[name] = str(value)
    for name, values in (result.get("multiValueHeaders") or {}).items():
        for value in values:
            response.headers.add(name, str(value))
    for cookie in result.get("cookies") or []:
        response.headers.add("Set-Cookie", cookie)
    return response


@dataclass
class GatewayState:
    """What the control routes report and use; filled in by the runner as it starts."""

    stack: Stack
    handlers: dict[str, Callable[..., Any]]
    load_errors: dict[str, str] = field(default_factory=dict)
    pollers: Any = None  # infra.pollers.BackgroundPollers
    authorizer: JwtAuthorizer | None = None  # the template's TeamJwtAuthorizer, against the local issuer
    oidc_issuer: str | None = None
    ready: bool = False
    demo: str = "pending"


class LocalGateway:
    """A WSGI app standing in for the template's HttpApi (its routes, the page's too), plus /_local
    control routes."""

    def __init__(self, state: GatewayState) -> None:
        self.state = state
        self.routes: list[Route] = routes_of(state.stack)

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        request = Request(environ)
        try:
            response = self.dispatch(request)
        except Exception:
            log.exception("%s %s failed", request.method, request.path)
            response = _json(500, {"message": "Internal Server Error"})
        return response(environ, start_response)

    def dispatch(self, request: Request) -> Response:
        if request.path.startswith("/_local/"):
            return self.control(request)
        found = find_route(self.routes, request.method, request.path)
        if found is None:
            return _json(404, {"message": "Not Found"})
        route, path_parameters = found
        return self.invoke_route(request, route, path_parameters)

    def invoke_route(self, request: Request, route: Route, path_parameters: dict[str, str]) -> Response:
        if route.authorizer == "AWS_IAM":
            if not is_operator(request.headers):
                return _json(403, {"message": "Forbidden"})
            identity = Identity.operator()
        elif route.authorizer == "NONE":
            identity = ANONYMOUS
        else:
            try:
                identity = team_user(request.headers, self.state.authorizer)
            except Unauthorized as error:
                # API Gateway's answer: 401, the reason in WWW-Authenticate only
                description = str(error).replace('"', "'")
                challenge = f'Bearer scope="" error="invalid_token" error_description="{description}"'
                return _json(401, {"message": "Unauthorized"}, {"WWW-Authenticate": challenge})
        handler = self.state.handlers.get(route.function)
        if handler is None:
            log.error("%s is not loaded: %s", route.function, self.state.load_errors.get(route.function))
            return _json(500, {"message": "Internal Server Error"})
        headers: dict[str, str] = {}
        for name, value in request.headers.items():
            # HTTP API joins repeated headers with commas and moves cookies to their own field
            key = name.lower()
            headers[key] = f"{headers[key]},{value}" if key in headers else value
        cookie_header = headers.pop("cookie", None)
        body = request.get_data() if request.content_length or request.headers.get("Transfer-Encoding") else None
        event = http_event(
            route,
            request.path,
            path_parameters,
            identity=identity,
            query=request.query_string.decode("latin-1"),
            headers=headers,
            body=body,
        )
        if cookie_header:
            event["cookies"] = [cookie.strip() for cookie in cookie_header.split(";") if cookie.strip()]
        result = invoke(self.state.stack, self.state.handlers, route.function, event)
        return lambda_response(result)

    # ---------------------------------------------------------------- control routes

    def control(self, request: Request) -> Response:
        parts = request.path.strip("/").split("/")
        if parts == ["_local", "health"] and request.method == "GET":
            body = {
                "ready": self.state.ready,
                "demo": self.state.demo,
                "moto_url": os.environ.get("AWS_ENDPOINT_URL"),
                "oidc_issuer": self.state.oidc_issuer,
                "functions": {name: "loaded" for name in self.state.handlers} | self.state.load_errors,
            }
            return _json(200 if self.state.ready else 503, body)
        if parts == ["_local", "emails"] and request.method == "GET":
            emails = sent_emails()
            recipient = request.args.get("to")
            if recipient:
                emails = [e for e in emails if any(recipient.lower() in to.lower() for to in e.get("to", []))]
            return _json(200, {"items": emails})
        if parts == ["_local", "drain"] and request.method == "POST":
            if self.state.pollers is None:
                return _json(503, {"message": "pollers not running"})
            return _json(200, self.state.pollers.drain_now())
        if len(parts) == 3 and parts[:2] == ["_local", "run"] and request.method == "POST":
            return self.run_function(request, parts[2])
        return _json(404, {"message": "Not Found"})

    def run_function(self, request: Request, function: str) -> Response:
        if function not in {source.function for source in schedule_sources(self.state.stack)}:
            return _json(404, {"message": f"{function} is not a scheduled function of the template"})
        if function not in self.state.handlers:
            return _json(500, {"message": f"{function} is not loaded: {self.state.load_errors.get(function)}"})
        time = None
        if request.get_data():
            try:
                payload = json.loads(request.get_data())
            except ValueError:
                return _json(400, {"message": 'body must be JSON like {"time": "2026-11-25T14:00:00Z"}'})
            time = payload.get("time") if isinstance(payload, dict) else None
        event = scheduled_event(self.state.stack, function, time)
        try:
            result = invoke(self.state.stack, self.state.handlers, function, event)
            # the job fans out to workers through its queues: take them now, so the answer is the run's
            drained = self.state.pollers.drain_now() if self.state.pollers is not None else None
        except Exception as error:
            log.exception("run of %s failed", function)
            trace = traceback.format_exc()
            return _json(500, {"function": function, "time": event["time"], "error": repr(error), "traceback": trace})
        return _json(200, {"function": function, "time": event["time"], "result": result, "workers": drained})


class _GatewayRequestHandler(WSGIRequestHandler):
    def log_request(self, code: Any = "-", size: Any = "-") -> None:
        if not self.path.startswith("/_local/health"):  # readiness polling is noise
            super().log_request(code, size)


def serve_gateway(app: LocalGateway, port: int, host: str = "127.0.0.1") -> BaseWSGIServer:
    """Start the gateway in a daemon thread; returns the server (shutdown() to stop)."""
    server = make_server(host, port, app, threaded=True, request_handler=_GatewayRequestHandler)
    threading.Thread(target=server.serve_forever, name="gateway", daemon=True).start()
    return server


# -------------------------------------------------------------------------------- main


def banner(base_url: str, moto_url: str, issuer: str) -> str:
    return f"""
usage-ledger local stack
  API + web   {base_url}   (the page signs in at the OIDC provider: pick alice, bob, hana or carl)
  OIDC        {issuer}   (the stand-in for JwtIssuer; client id usage-ledger)
  moto        {moto_url}

  # curl: the X-Local-User header stands in for a signed-in user (local only; a deployment needs a JWT)

  curl -s -H 'X-Local-User: alice' {base_url}/v1/teams/team-demo/balances
  curl -s -H 'X-Local-User: alice' '{base_url}/v1/teams/team-demo/usage?granularity=day&group_by=resource'
  curl -s -H 'X-Local-Operator: 1' {base_url}/v1/teams/team-demo/entitlements/asset
  curl -s -X POST {base_url}/_local/run/CloseBillingCyclesFunction -d '{{"time": "2026-12-31T00:00:00Z"}}'
  curl -s -X POST {base_url}/_local/drain        # process queued events now
  curl -s {base_url}/_local/emails               # what SES has sent
Ctrl-C stops everything.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.local", description=__doc__)
    parser.add_argument("--port", type=int, default=int(os.environ.get("LOCAL_PORT", "3000")))
    parser.add_argument("--moto-port", type=int, default=5000, help="0 picks a free port")
    parser.add_argument("--stripe-port", type=int, default=0, help="localstripe's port (0 picks a free port)")
    parser.add_argument("--no-demo", action="store_true", help="do not load the demo team")
    parser.add_argument("--schedule-seconds", type=float, default=60.0, help="seconds between scheduled runs")
    parser.add_argument("--oidc-port", type=int, default=int(os.environ.get("LOCAL_OIDC_PORT", "3001")),
                        help="port of the local OIDC provider (JwtIssuer); 0 picks a free port")
    parser.add_argument("--token-seconds", type=int, default=3600, help="lifetime of the ID tokens it issues")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    configure_aws_environment()

    moto_url, stop_moto = start_moto_server(args.moto_port)
    configure_aws_environment(moto_url)
    stripe_url, stop_stripe = start_localstripe(args.stripe_port)

    # the page's sign-in: a real OIDC provider stands in for JwtIssuer; the demo members can sign in
    users = {user_id: {"email": member["email"]} for user_id, member in MEMBERS.items()}
    issuer, stop_oidc = start_oidc_provider(users, args.oidc_port, token_seconds=args.token_seconds)
    from usage_ledger.http.page import LOCAL_USER_HEADER_ENV  # shared/ is on sys.path once infra.lambdas is

    os.environ[LOCAL_USER_HEADER_ENV] = "1"  # local only: the page may use the X-Local-User shortcut

    base_url = f"http://127.0.0.1:{args.port}"
    stack = deploy(
        boto3.session.Session(region_name=REGION),
        parameters={"PortalBaseUrl": base_url, "JwtIssuer": issuer, "StripeApiBase": stripe_url},
        endpoint_url=moto_url,
    )
    apply_function_environment(stack)
    # Stripe's events reach the local stack's webhook route, signed with the secret deploy() stored
    register_webhook(stripe_url, f"{base_url}/v1/stripe/webhooks")
    handlers, errors = load_handlers(stack)
    state = GatewayState(stack=stack, handlers=handlers, load_errors=errors, oidc_issuer=issuer,
                         authorizer=JwtAuthorizer(issuer, [stack.parameters["JwtAudience"]]))
    # pollers first: the stream poller starts at LATEST, so it must exist before any write
    state.pollers = BackgroundPollers(stack, handlers, schedule_seconds=args.schedule_seconds)
    state.pollers.schedule_started.clear()  # the schedule starts once the demo is in (below)
    state.pollers.start()
    server = serve_gateway(LocalGateway(state), args.port)
    print(banner(base_url, moto_url, issuer), flush=True)

    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())

    def replay(at: datetime, step: Callable[[], Any]) -> Any:
        """Run `step` and apply what it sent with every function's clock at `at`: the demo's history
        is billed as it would have been then. The whole process's clock, so only before `ready` (the
        scheduler waits for the demo; a request served meanwhile sees that time too)."""
        from usage_ledger import clock

        wall_clock = clock.now
        clock.now = lambda: at
        try:
            result = step()
            state.pollers.drain_now()
            return result
        finally:
            clock.now = wall_clock

    def load() -> None:
        if args.no_demo:
            state.demo = "skipped"
        else:
            try:
                summary = load_demo(base_url, stripe_url, replay=replay)
                state.pollers.drain_now()  # so the cards show numbers at once
                state.demo = "loaded"
                log.info("demo loaded: %s", summary)
            except Exception as error:
                log.exception("demo load failed")
                state.demo = f"failed: {error}"
        state.pollers.schedule_started.set()
        state.ready = True
        print(f"ready: {base_url} (demo {state.demo})", flush=True)

    threading.Thread(target=load, name="demo-loader", daemon=True).start()
    while not stopping.wait(0.5):
        pass
    print("stopping...", flush=True)
    server.shutdown()
    state.pollers.stop()
    stop_oidc()
    stop_moto()
    stop_stripe()
    return 0


if __name__ == "__main__":
    sys.exit(main())
