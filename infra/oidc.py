"""The local OpenID Connect provider: `oidc-provider-mock` (PyPI) on its own port, for `make run`.

It stands in for the template's JwtIssuer (a Cognito user pool or any OIDC provider): discovery at
`<issuer>/.well-known/openid-configuration`, an authorization endpoint where the user picks who
they are (a button per demo user, or any user id typed in: it becomes the token's `sub`), a token
endpoint issuing RS256-signed ID tokens whose `aud` is the client id, a JWKS, an end-session page.

Around the mock, six things a real provider does for a browser app and the mock does not:
- PKCE (RFC 7636) is required and checked: an authorization request without an S256
  `code_challenge` is refused, and the token endpoint checks `code_verifier` against it;
- a public client (no secret, `token_endpoint_auth_method=none`) may redeem its code, as a Cognito
  app client without a secret may;
- CORS on discovery, JWKS and the token endpoint, which the page calls from its own origin;
- ID tokens carry the `kid` of their key in their header (API Gateway looks the key up by it);
- its pages are styled from files we ship (infra/sign_in/: the mock's own pages link a CDN
  stylesheet, so they are unstyled offline);
- signing out with a `post_logout_redirect_uri` goes straight back there, as Cognito's `/logout`
  does (the mock stops on an "End Session" page first and waits for a click).
The Werkzeug debugger the mock switches on is switched off again.
"""
from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import threading
import warnings
from collections.abc import Callable, Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

from jinja2 import ChoiceLoader, FileSystemLoader
from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Request, Response

CORS_PATHS = ("/.well-known/openid-configuration", "/jwks", "/oauth2/token", "/userinfo")
PAGES = Path(__file__).with_name("sign_in")  # our _base.html over the mock's, and its stylesheet
STYLESHEET = "/_usage-ledger/sign-in.css"


def s256(verifier: str) -> str:
    """The PKCE S256 challenge of a code verifier (RFC 7636 section 4.2)."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()


class PkceAndCors:
    """WSGI middleware: PKCE required and verified, public clients, CORS for the page's fetches."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app
        self.challenges: dict[str, str] = {}  # authorization code -> its code_challenge
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = Request(environ)
        if request.method == "OPTIONS" and request.path in CORS_PATHS:
            return self._cors(Response(status=204))(environ, start_response)
        if request.path == "/oauth2/authorize":
            return self.authorize(request, environ, start_response)
        if request.path == "/oauth2/token" and request.method == "POST":
            return self.token(request, environ, start_response)
        if request.path == STYLESHEET:
            css = (PAGES / "sign-in.css").read_bytes()
            return Response(css, content_type="text/css; charset=utf-8")(environ, start_response)
        if request.path == "/oauth2/end_session":
            back = self.after_sign_out(request)
            if back:
                return Response(status=302, headers={"Location": back})(environ, start_response)
        response = Response.from_app(self.app, environ)
        if request.path in CORS_PATHS:
            self._cors(response)
        return response(environ, start_response)

    def authorize(self, request: Request, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        challenge = request.args.get("code_challenge", "")
        if request.args.get("code_challenge_method") != "S256" or not 43 <= len(challenge) <= 128:
            response = Response(
                "PKCE is required: send code_challenge (43-128 characters) with code_challenge_method=S256",
                status=400, content_type="text/plain; charset=utf-8",
            )
            return response(environ, start_response)
        response = Response.from_app(self.app, environ)
        location = response.headers.get("Location", "")
        codes = parse_qs(urlsplit(location).query).get("code")
        if response.status_code in (302, 303) and codes:
            with self.lock:
                self.challenges[codes[0]] = challenge
        return response(environ, start_response)

    def token(self, request: Request, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        body = request.get_data()
        form = {key: values[0] for key, values in parse_qs(body.decode("utf-8", "replace")).items()}
        if form.get("grant_type") == "authorization_code":
            with self.lock:
                challenge = self.challenges.pop(form.get("code", ""), None)
            verifier = form.get("code_verifier", "")
            if challenge is None or not verifier or s256(verifier) != challenge:
                error = {"error": "invalid_grant", "error_description": "PKCE verification failed"}
                return self._cors(Response(json.dumps(error), status=400, content_type="application/json"))(
                    environ, start_response)
        environ["wsgi.input"] = io.BytesIO(body)  # the mock reads the form again
        environ["CONTENT_LENGTH"] = str(len(body))
        return self._cors(Response.from_app(self.app, environ))(environ, start_response)

    @staticmethod
    def after_sign_out(request: Request) -> str | None:
        """Where RP-initiated logout returns to (`post_logout_redirect_uri`, with `state` added as the
        spec says), or None to leave the request to the mock. Any http(s) address is taken, as the
        mock takes any redirect_uri when signing in: this provider is for the local runner only."""
        target = request.values.get("post_logout_redirect_uri") or ""
        parts = urlsplit(target)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            return None
        state = request.values.get("state")
        if state is None:
            return target
        query = parse_qs(parts.query, keep_blank_values=True)
        query["state"] = [state]
        return urlunsplit(parts._replace(query=urlencode(query, doseq=True)))

    @staticmethod
    def _cors(response: Response) -> Response:
        response.headers["Access-Control-Allow-Origin"] = "*"
        response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
        response.headers["Access-Control-Allow-Headers"] = "Content-Type, Authorization"
        return response


def provider_app(users: dict[str, dict[str, Any]], token_seconds: int = 3600) -> Any:
    """The mock's Flask app with the demo users as one-click choices, wrapped as described above."""
    os.environ.setdefault("AUTHLIB_INSECURE_TRANSPORT", "1")  # plain http on 127.0.0.1
    with warnings.catch_warnings():  # authlib's deprecation notices about the mock's imports
        warnings.simplefilter("ignore")
        import oidc_provider_mock
        from oidc_provider_mock import _app as mock_app

    # public clients (no secret), as a browser app is: authlib's code grant allows only secrets by default
    methods = mock_app.AuthorizationCodeGrant.TOKEN_ENDPOINT_AUTH_METHODS
    if "none" not in methods:
        mock_app.AuthorizationCodeGrant.TOKEN_ENDPOINT_AUTH_METHODS = [*methods, "none"]
    # ID tokens name their key (`kid`), as API Gateway's JWT authorizer requires: the mock leaves it out
    if not getattr(mock_app.OpenIDCode, "_names_its_key", False):
        encode_header = mock_app.OpenIDCode.get_encode_header

        def get_encode_header(self: Any, client: Any) -> dict[str, Any]:
            return {**encode_header(self, client), "kid": mock_app.storage.jwk.as_dict()["kid"]}

        mock_app.OpenIDCode.get_encode_header = get_encode_header
        mock_app.OpenIDCode._names_its_key = True
    app = oidc_provider_mock.app(
        require_nonce=True,
        issue_refresh_token=False,
        access_token_max_age=timedelta(seconds=token_seconds),
        user_claims=[oidc_provider_mock.User(sub=sub, claims=claims) for sub, claims in users.items()],
    )
    app.debug = False
    # our _base.html first (every page of the mock extends it): styled from STYLESHEET, no CDN
    app.jinja_loader = ChoiceLoader([FileSystemLoader(str(PAGES)), *([app.jinja_loader] if app.jinja_loader else [])])
    app.wsgi_app = getattr(app.wsgi_app, "app", app.wsgi_app)  # no Werkzeug debugger (it runs code)
    app.wsgi_app = PkceAndCors(app.wsgi_app)
    return app


def start_oidc_provider(
    users: dict[str, dict[str, Any]], port: int = 0, host: str = "127.0.0.1", token_seconds: int = 3600
) -> tuple[str, Callable[[], None]]:
    """Serve the provider in a daemon thread; returns (issuer URL, stop). The issuer is the URL the
    browser and the gateway reach it at (the mock names itself after the Host it is called with)."""
    server: BaseWSGIServer = make_server(host, port, provider_app(users, token_seconds), threaded=True)
    threading.Thread(target=server.serve_forever, name="oidc-provider", daemon=True).start()

    def stop() -> None:
        server.shutdown()
        server.server_close()

    return f"http://{host}:{server.server_port}", stop
