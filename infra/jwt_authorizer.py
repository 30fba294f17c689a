"""The local gateway's JWT authorizer: what API Gateway's HTTP API JWT authorizer checks, with PyJWT.

As API Gateway documents it (HTTP APIs, "Controlling access with JWT authorizers"):
- the token is the `Authorization` header (the template's IdentitySource), with or without `Bearer `;
- its `kid` names a key of the issuer's JWKS (`jwks_uri` of `<issuer>/.well-known/openid-configuration`,
  fetched once and cached; refetched when a `kid` is unknown, at most once a minute), RSA-signed;
- `iss` is the issuer; `aud` or, when there is no `aud`, `client_id` is one of the audiences;
- `exp` is in the future, `nbf` and `iat` (when present) in the past;
- the claims reach the function as strings in `requestContext.authorizer.jwt.claims`.
Anything else is 401 Unauthorized before the function runs.
"""
from __future__ import annotations

import json
import re
import threading
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import jwt

ALGORITHMS = ["RS256", "RS384", "RS512"]
REFETCH_SECONDS = 60.0
# the claims RFC 7519 defines as NumericDate: a JSON number of seconds, never a string of one
NUMERIC_DATES = ("exp", "nbf", "iat")

Fetch = Callable[[str], dict[str, Any]]


class Unauthorized(Exception):
    """The token is missing or not valid; the message says why (API Gateway's error_description)."""


def fetch_json(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def claim_strings(claims: dict[str, Any]) -> dict[str, str]:
    """Claims as API Gateway passes them: every value a string, a list as `[a b]`."""
    def text(value: Any) -> str:
        if isinstance(value, list):
            return "[" + " ".join(text(item) for item in value) + "]"
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, dict):
            return json.dumps(value, separators=(",", ":"))
        return str(value)

    return {name: text(value) for name, value in claims.items()}


class JwtAuthorizer:
    def __init__(self, issuer: str, audiences: list[str], fetch: Fetch = fetch_json,
                 clock: Callable[[], float] = time.time) -> None:
        self.issuer = issuer
        self.audiences = list(audiences)
        self.fetch = fetch
        self.clock = clock
        self.keys: dict[str, jwt.PyJWK] = {}
        self.fetched_at: float | None = None
        self.lock = threading.Lock()

    def _refresh(self) -> None:
        discovery = self.fetch(self.issuer.rstrip("/") + "/.well-known/openid-configuration")
        jwks = self.fetch(discovery["jwks_uri"])
        keys = {}
        for key in jwks.get("keys", []):
            if key.get("kid") and key.get("kty") == "RSA" and key.get("use", "sig") == "sig":
                keys[key["kid"]] = jwt.PyJWK.from_dict(key)
        self.keys = keys
        self.fetched_at = self.clock()

    def key_for(self, kid: str) -> jwt.PyJWK:
        with self.lock:
            stale = self.fetched_at is None or self.clock() - self.fetched_at >= REFETCH_SECONDS
            if kid not in self.keys and stale:
                try:
                    self._refresh()
                except (OSError, ValueError, KeyError) as error:
                    raise Unauthorized(f"the issuer's keys could not be fetched: {error}") from error
            if kid not in self.keys:
                raise Unauthorized(f"no key {kid!r} in the issuer's JWKS")
            return self.keys[kid]

    def claims(self, authorization: str | None) -> dict[str, Any]:
        """The verified claims of the token in an Authorization header value; raises Unauthorized."""
        token = re.sub(r"^bearer(\s+|$)", "", (authorization or "").strip(), flags=re.IGNORECASE)
        if not token:
            raise Unauthorized("no token")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as error:
            raise Unauthorized(f"not a JWT: {error}") from error
        if header.get("alg") not in ALGORITHMS:
            raise Unauthorized(f"signing algorithm {header.get('alg')!r} is not accepted")
        key = self.key_for(str(header.get("kid") or ""))
        try:
            claims = jwt.decode(
                token, key, algorithms=ALGORITHMS, issuer=self.issuer,
                options={"require": ["exp", "iss"], "verify_aud": False},
                leeway=0,
            )
        except jwt.InvalidTokenError as error:
            raise Unauthorized(str(error)) from error
        for name in NUMERIC_DATES:  # PyJWT takes "exp": "9999999999"; API Gateway refuses it
            value = claims.get(name)
            if name in claims and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise Unauthorized(f"{name} is not a number")
        audience = claims.get("aud", claims.get("client_id"))
        audiences = audience if isinstance(audience, list) else [audience]
        if not any(isinstance(item, str) and item in self.audiences for item in audiences):
            raise Unauthorized("the token's audience (aud, or client_id) is not accepted")
        if not claims.get("sub"):
            raise Unauthorized("the token has no sub")
        return claims
