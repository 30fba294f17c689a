"""The web page's function (WebPageFunction): web/ as static files, and the page's sign-in config.

Routes (public, no authorizer): `GET /` is web/index.html; `GET /web/{proxy+}` is the file under
web/, and `GET /web/config.json` the configuration the page signs in with, from the function's
environment (the template's JwtIssuer and JwtAudience), never written into the page itself.

In Lambda the function has no layer: its build (packaging/Makefile, build-WebPageFunction) puts
web/ under web/ in the function's code (/var/task: LAMBDA_TASK_ROOT) and this module, which needs
only the standard library, beside it as usage_ledger/http/page.py. Run from the repository (the
local runner, the tests), the files are the repository's web/ folder.
"""
from __future__ import annotations

import base64
import hashlib
import json
import mimetypes
import os
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

CONFIG_FILE = "config.json"
TEXT_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".json": "application/json",
              ".svg": "image/svg+xml", ".txt": "text/plain"}
# local runner only (infra/local.py sets it, the template never does): the page may send X-Local-User
LOCAL_USER_HEADER_ENV = "USAGE_LEDGER_LOCAL_USER_HEADER"


def files_root() -> Path:
    task_root = os.environ.get("LAMBDA_TASK_ROOT")
    if task_root:
        return Path(task_root) / "web"  # the handler's own package is beside it, never served
    return Path(__file__).resolve().parents[3] / "web"  # shared/usage_ledger/http/page.py -> web/


def page_config() -> dict[str, Any]:
    """What web/auth.js needs: the OIDC issuer and client, the API's base (same origin: empty)."""
    return {
        "issuer": os.environ.get("JWT_ISSUER", "").rstrip("/"),
        "clientId": os.environ.get("JWT_AUDIENCE", ""),
        "scope": "openid",
        "apiBase": "",
        "stripePublishableKey": os.environ.get("STRIPE_PUBLISHABLE_KEY") or None,
        "stripeJsUrl": stripe_js_url(os.environ.get("STRIPE_API_BASE", "")),
        "localUserHeader": os.environ.get(LOCAL_USER_HEADER_ENV) == "1",
    }


STRIPE_API = "https://api.stripe.com"
STRIPE_JS = "https://js.stripe.com/v3/"


def stripe_js_url(api_base: str) -> str | None:
    """Stripe.js for the template's StripeApiBase: Stripe's own for Stripe, else the stand-in's copy
    (localstripe serves it at <base>/js.stripe.com/v3/ and sends its calls to that base)."""
    base = api_base.rstrip("/")
    if not base:
        return None
    return STRIPE_JS if base == STRIPE_API else base + "/js.stripe.com/v3/"


def _origin(url: str | None) -> str:
    parts = urlsplit(url or "")
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""


def content_security_policy(issuer: str, stripe_js: str | None = None) -> str:
    """The page's CSP: scripts and styles from itself and Stripe.js's origin; fetches to itself, the
    issuer (discovery, token endpoint; a provider whose token endpoint is on another https host, as
    Cognito's domain is, needs `https:`) and the Stripe API; Stripe.js's frames (real Stripe only)."""
    stripe_origin = _origin(stripe_js)
    stripe_api = STRIPE_API if stripe_js == STRIPE_JS else stripe_origin
    connect = " ".join(item for item in dict.fromkeys(("'self'", _origin(issuer), stripe_api, "https:")) if item)
    script = " ".join(item for item in ("'self'", stripe_origin) if item)
    frame = f"frame-src {stripe_origin}; " if stripe_origin else ""
    return (f"default-src 'self'; script-src {script}; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
            f"connect-src {connect}; {frame}object-src 'none'; base-uri 'none'; form-action 'none'; "
            "frame-ancestors 'none'")


def _response(status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    text = content_type.startswith("text/") or content_type in {"application/json", "image/svg+xml"}
    all_headers = {"Content-Type": f"{content_type}; charset=utf-8" if text else content_type,
                   "X-Content-Type-Options": "nosniff", **(headers or {})}
    if text:
        return {"statusCode": status, "headers": all_headers, "body": body.decode("utf-8"), "isBase64Encoded": False}
    return {"statusCode": status, "headers": all_headers, "body": base64.b64encode(body).decode(),
            "isBase64Encoded": True}


def _not_found() -> dict[str, Any]:
    body = json.dumps({"type": "about:blank", "title": "Not Found", "status": 404}).encode()
    return _response(404, body, "application/problem+json")


@lru_cache(maxsize=64)
def _read(path: Path, modified_ns: int) -> tuple[bytes, str]:
    body = path.read_bytes()
    return body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def resolve_file(root: Path, relative: str) -> Path | None:
    """The file under root that a request names; None for anything outside it, hidden, or absent."""
    parts = [part for part in relative.split("/") if part]
    if not parts or any(part in {".", ".."} or part.startswith(".") or "\\" in part for part in parts):
        return None
    path = root.joinpath(*parts).resolve()
    if root.resolve() not in path.parents or not path.is_file():
        return None
    return path


def serve(event: dict[str, Any], root: Path) -> dict[str, Any]:
    path = event.get("rawPath") or "/"
    config = page_config()
    if path == "/":
        relative = "index.html"
    elif path.startswith("/web/"):
        relative = path[len("/web/"):]
    else:
        return _not_found()
    if relative == CONFIG_FILE:
        return _response(200, json.dumps(config).encode(), "application/json", {"Cache-Control": "no-store"})
    found = resolve_file(root, relative)
    if found is None or found.suffix == ".py":
        return _not_found()
    body, etag = _read(found, found.stat().st_mtime_ns)
    headers = {"ETag": etag, "Cache-Control": "no-cache"}  # revalidate: a deploy shows at once
    if found.suffix == ".html":
        headers["Content-Security-Policy"] = content_security_policy(config["issuer"], config["stripeJsUrl"])
        headers["Referrer-Policy"] = "no-referrer"  # the sign-in callback's ?code= never leaves in a Referer
    if (event.get("headers") or {}).get("if-none-match") == etag:
        return {"statusCode": 304, "headers": headers, "body": "", "isBase64Encoded": False}
    content_type = TEXT_TYPES.get(found.suffix) or mimetypes.guess_type(found.name)[0] or "application/octet-stream"
    return _response(200, body, content_type, headers)


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return serve(event, files_root())
