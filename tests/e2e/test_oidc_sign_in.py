"""End-to-end: the page's sign-in over HTTP against `python -m infra.local` - the page's config, the
OIDC provider stand-in's discovery, an authorization code with PKCE (S256), the token, and the team
routes called with that token through the local gateway's JWT authorizer."""

from __future__ import annotations

import base64
import json
import secrets
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import pytest
from local_stack import call, start_local_stack

from infra.oidc import s256

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def base_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    return start_local_stack(request, tmp_path_factory)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


OPENER = urllib.request.build_opener(_NoRedirect)


def http(url: str, data: dict[str, str] | None = None, headers: dict[str, str] | None = None):
    """(status, headers, body bytes) without following redirects."""
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    request = urllib.request.Request(url, data=body, headers=headers or {}, method="POST" if data else "GET")
    try:
        with OPENER.open(request, timeout=30) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def get_json(url: str) -> dict[str, Any]:
    status, _, body = http(url)
    assert status == 200, (url, status, body)
    return json.loads(body)


def claims_of(token: str) -> dict[str, Any]:
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def authorize(base_url: str, sub: str, challenge: str | None) -> tuple[dict[str, Any], str, str]:
    """The page's first half: config, discovery, the authorization request, the user picking `sub`
    at the provider. Returns (provider metadata, the code, the redirect URI)."""
    config = get_json(base_url + "/web/config.json")
    metadata = get_json(config["issuer"] + "/.well-known/openid-configuration")
    assert metadata["issuer"] == config["issuer"]
    redirect_uri = base_url + "/"
    query = {"response_type": "code", "client_id": config["clientId"], "redirect_uri": redirect_uri,
             "scope": "openid", "state": "s-" + secrets.token_urlsafe(8), "nonce": "n-" + secrets.token_urlsafe(8)}
    if challenge is not None:
        query |= {"code_challenge": challenge, "code_challenge_method": "S256"}
    url = metadata["authorization_endpoint"] + "?" + urllib.parse.urlencode(query)
    status, _, page = http(url)
    assert status == 200, page
    assert b"alice" in page  # the demo users are one-click choices
    status, headers, _ = http(url, {"sub": sub})
    assert status == 302, status
    location = headers["Location"]
    assert location.startswith(redirect_uri)
    params = urllib.parse.parse_qs(urllib.parse.urlsplit(location).query)
    assert params["state"] == [query["state"]]
    return metadata, params["code"][0], redirect_uri


def redeem(metadata: dict[str, Any], code: str, redirect_uri: str, verifier: str) -> tuple[int, dict[str, Any]]:
    status, headers, body = http(metadata["token_endpoint"], {
        "grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
        "client_id": "usage-ledger", "code_verifier": verifier,
    })
    assert headers.get("Access-Control-Allow-Origin") == "*"  # the page calls it from its own origin
    return status, json.loads(body)


def test_the_page_is_served_by_its_template_routes_with_the_sign_in_config(base_url: str) -> None:
    status, headers, body = http(base_url + "/")
    assert status == 200 and b'src="web/auth.js"' in body
    config = get_json(base_url + "/web/config.json")
    assert config["clientId"] == "usage-ledger" and config["issuer"].startswith("http://127.0.0.1:")
    assert f"connect-src 'self' {config['issuer']}" in headers["Content-Security-Policy"]
    status, headers, _ = http(base_url + "/web/auth.js")
    assert status == 200 and headers["Content-Type"].startswith("text/javascript")
    assert http(base_url + "/web/no-such-file.js")[0] == 404


def test_a_pkce_sign_in_gives_a_token_the_api_accepts(base_url: str) -> None:
    verifier = secrets.token_urlsafe(48)
    metadata, code, redirect_uri = authorize(base_url, "alice", s256(verifier))

    status, tokens = redeem(metadata, code, redirect_uri, verifier)

    assert status == 200, tokens
    claims = claims_of(tokens["id_token"])
    assert claims["sub"] == "alice" and "usage-ledger" in claims["aud"]
    bearer = {"Authorization": "Bearer " + tokens["id_token"], "Accept": "application/json"}
    status, _, body = http(base_url + "/v1/teams/team-demo/balances", headers=bearer)
    assert status == 200, body
    assert json.loads(body)["team_id"] == "team-demo"
    # the same token without "Bearer " also passes, as with API Gateway
    status, _, _ = http(base_url + "/v1/teams/team-demo/balances", headers={"Authorization": tokens["id_token"]})
    assert status == 200
    # who signed in decides what they may see: carl has no role
    verifier = secrets.token_urlsafe(48)
    metadata, code, redirect_uri = authorize(base_url, "carl", s256(verifier))
    carl = redeem(metadata, code, redirect_uri, verifier)[1]["id_token"]
    status, _, _ = http(base_url + "/v1/teams/team-demo/invoices", headers={"Authorization": "Bearer " + carl})
    assert status == 403


def test_a_code_redeemed_without_its_verifier_or_twice_is_refused(base_url: str) -> None:
    verifier = secrets.token_urlsafe(48)
    metadata, code, redirect_uri = authorize(base_url, "bob", s256(verifier))
    status, body = redeem(metadata, code, redirect_uri, secrets.token_urlsafe(48))
    assert status == 400 and body["error"] == "invalid_grant"
    # the code is spent by the failed attempt too
    status, body = redeem(metadata, code, redirect_uri, verifier)
    assert status == 400


def test_an_authorization_request_without_pkce_is_refused(base_url: str) -> None:
    config = get_json(base_url + "/web/config.json")
    metadata = get_json(config["issuer"] + "/.well-known/openid-configuration")
    query = {"response_type": "code", "client_id": "usage-ledger", "redirect_uri": base_url + "/", "scope": "openid",
             "state": "s", "nonce": "n"}
    status, _, body = http(metadata["authorization_endpoint"] + "?" + urllib.parse.urlencode(query))
    assert status == 400 and b"PKCE" in body


def test_the_gateway_refuses_what_api_gateway_refuses(base_url: str) -> None:
    verifier = secrets.token_urlsafe(48)
    metadata, code, redirect_uri = authorize(base_url, "alice", s256(verifier))
    token = redeem(metadata, code, redirect_uri, verifier)[1]["id_token"]
    head, payload, signature = token.split(".")
    forged = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))) | {"sub": "mallory"}
    forged_payload = base64.urlsafe_b64encode(json.dumps(forged).encode()).rstrip(b"=").decode()
    for authorization in (None, "Bearer ", "Bearer not-a-jwt", f"Bearer {head}.{forged_payload}.{signature}"):
        headers = {"Authorization": authorization} if authorization is not None else {}
        status, _, body = http(base_url + "/v1/teams/team-demo/balances", headers=headers)
        assert status == 401, (authorization, body)
        assert json.loads(body) == {"message": "Unauthorized"}
    # the header shortcut stays for curl (local only)
    assert call(base_url, "GET", "/v1/teams/team-demo/balances", user="alice").status == 200
