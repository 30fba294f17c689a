"""The local gateway's JWT authorizer refuses and admits what API Gateway's HTTP API JWT authorizer does
(infra/jwt_authorizer.py, wired in infra/local.py), checked through the gateway: a JWT route answers
401 {"message": "Unauthorized"} before its function runs, or the function sees the verified claims."""
from __future__ import annotations

import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from werkzeug.test import Client

from infra.jwt_authorizer import REFETCH_SECONDS, JwtAuthorizer, Unauthorized, claim_strings
from infra.local import GatewayState, LocalGateway
from infra.stack import Stack, default_parameters
from infra.template import load_template

ISSUER = "https://issuer.test"
AUDIENCE = "usage-ledger"
BALANCES = "/v1/teams/team-demo/balances"


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


SIGNING_KEY, OTHER_KEY = new_key(), new_key()


def public_jwk(key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    return {**jwk, "kid": kid, "use": "sig", "alg": "RS256"}


class Issuer:
    """Discovery and JWKS as the issuer serves them; counts the fetches."""

    def __init__(self) -> None:
        self.keys = [public_jwk(SIGNING_KEY, "key-1")]
        self.fetched: list[str] = []

    def fetch(self, url: str) -> dict[str, Any]:
        self.fetched.append(url)
        if url == ISSUER + "/.well-known/openid-configuration":
            return {"issuer": ISSUER, "jwks_uri": ISSUER + "/jwks"}
        if url == ISSUER + "/jwks":
            return {"keys": list(self.keys)}
        raise OSError(f"no such URL {url}")


def token(key: rsa.RSAPrivateKey = SIGNING_KEY, kid: str | None = "key-1", **overrides: Any) -> str:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "iat": now, "exp": now + 300} | overrides
    claims = {name: value for name, value in claims.items() if value is not None}
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid} if kid else None)


@pytest.fixture
def issuer() -> Issuer:
    return Issuer()


@pytest.fixture
def gateway(issuer: Issuer) -> tuple[Client, list[dict[str, Any]]]:
    """The local gateway over the template's routes; TeamApiFunction replaced by one that records its events."""
    template = load_template()
    stack = Stack(template=template, parameters=default_parameters(template))
    seen: list[dict[str, Any]] = []

    def team_api(event: dict[str, Any], context: Any) -> dict[str, Any]:
        seen.append(event)
        return {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": "{}"}

    state = GatewayState(stack=stack, handlers={"TeamApiFunction": team_api},
                         authorizer=JwtAuthorizer(ISSUER, [AUDIENCE], fetch=issuer.fetch))
    return Client(LocalGateway(state)), seen


def get(client: Client, authorization: str | None = None, **headers: str):
    if authorization is not None:
        headers["Authorization"] = authorization
    return client.get(BALANCES, headers=headers)


def assert_refused(response, seen: list[dict[str, Any]], reason: str) -> None:
    assert response.status_code == 401
    assert response.get_json() == {"message": "Unauthorized"}
    assert reason in response.headers["WWW-Authenticate"]
    assert seen == []  # the function never ran


def test_a_good_token_reaches_the_function_with_its_claims(gateway):
    client, seen = gateway
    response = get(client, f"Bearer {token(groups=['a', 'b'])}")
    assert response.status_code == 200
    (event,) = seen
    claims = event["requestContext"]["authorizer"]["jwt"]["claims"]
    assert claims["sub"] == "alice" and claims["iss"] == ISSUER and claims["aud"] == AUDIENCE
    assert isinstance(claims["exp"], str) and claims["groups"] == "[a b]"  # as API Gateway passes them


def test_the_token_may_come_without_the_bearer_prefix(gateway):
    client, _ = gateway
    assert get(client, token()).status_code == 200


def test_a_cognito_access_token_passes_on_its_client_id(gateway):
    client, _ = gateway
    assert get(client, f"Bearer {token(aud=None, client_id=AUDIENCE, token_use='access')}").status_code == 200


def test_an_audience_list_passes_when_it_holds_the_audience(gateway):
    client, _ = gateway
    assert get(client, f"Bearer {token(aud=['other', AUDIENCE])}").status_code == 200


@pytest.mark.parametrize("authorization", [None, "", "Bearer", "Bearer "])
def test_a_missing_token_is_401(gateway, authorization):
    client, seen = gateway
    assert_refused(get(client, authorization), seen, "no token")


def test_a_wrong_issuer_is_401(gateway):
    client, seen = gateway
    assert_refused(get(client, f"Bearer {token(iss='https://evil.test')}"), seen, "issuer")


@pytest.mark.parametrize("claims", [{"aud": "someone-else"}, {"aud": ["a", "b"]},
                                    {"aud": None, "client_id": "someone-else"}, {"aud": None}])
def test_a_wrong_audience_is_401(gateway, claims):
    client, seen = gateway
    assert_refused(get(client, f"Bearer {token(**claims)}"), seen, "audience")


def test_an_expired_token_is_401(gateway):
    client, seen = gateway
    now = int(time.time())
    assert_refused(get(client, f"Bearer {token(iat=now - 600, exp=now - 1)}"), seen, "expired")


def test_a_token_without_exp_is_401(gateway):
    client, seen = gateway
    assert_refused(get(client, f"Bearer {token(exp=None)}"), seen, "exp")


def test_a_token_not_yet_valid_is_401(gateway):
    client, seen = gateway
    assert_refused(get(client, f"Bearer {token(nbf=int(time.time()) + 600)}"), seen, "not yet valid")


@pytest.mark.parametrize("claim", ["exp", "nbf", "iat"])
def test_a_date_claim_that_is_not_a_json_number_is_401(gateway, claim):
    """RFC 7519's NumericDate is a JSON number: a numeric string (which PyJWT would read) or a
    boolean is refused, as API Gateway's JWT authorizer refuses it."""
    client, seen = gateway
    now = int(time.time())
    fair = {"exp": now + 300, "nbf": now - 60, "iat": now - 60}[claim]
    assert_refused(get(client, f"Bearer {token(**{claim: str(fair)})}"), seen, f"{claim} is not a number")
    # true is 1 to PyJWT: an expiry in 1970, else a date claim that is not a number
    assert_refused(get(client, f"Bearer {token(**{claim: True})}"), seen,
                   "expired" if claim == "exp" else f"{claim} is not a number")
    assert get(client, f"Bearer {token(**{claim: fair})}").status_code == 200  # the same date as a number


def test_a_bad_signature_is_401(gateway):
    client, seen = gateway
    # signed by another key under the issuer's kid
    assert_refused(get(client, f"Bearer {token(key=OTHER_KEY)}"), seen, "Signature")
    # a claim changed after signing
    head, _, signature = token().split(".")
    forged = jwt.utils.base64url_encode(json.dumps({"iss": ISSUER, "aud": AUDIENCE, "sub": "mallory",
                                                    "exp": int(time.time()) + 300}).encode()).decode()
    assert_refused(get(client, f"Bearer {head}.{forged}.{signature}"), seen, "Signature")


def test_an_unsigned_or_hmac_token_is_401(gateway):
    client, seen = gateway
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "exp": int(time.time()) + 300}
    unsigned = jwt.encode(claims, None, algorithm="none", headers={"kid": "key-1"})
    assert_refused(get(client, f"Bearer {unsigned}"), seen, "algorithm")
    hmac = jwt.encode(claims, "secret" * 6, algorithm="HS256", headers={"kid": "key-1"})
    assert_refused(get(client, f"Bearer {hmac}"), seen, "algorithm")


def test_an_unknown_kid_is_401(gateway):
    client, seen = gateway
    assert_refused(get(client, f"Bearer {token(kid='key-9')}"), seen, "key-9")
    assert_refused(get(client, f"Bearer {token(kid=None)}"), seen, "no key")


def test_not_a_jwt_is_401(gateway):
    client, seen = gateway
    assert_refused(get(client, "Bearer abc.def.ghi"), seen, "not a JWT")


def test_the_header_shortcut_stays_for_curl(gateway):
    client, seen = gateway
    assert get(client, None, **{"X-Local-User": "bob"}).status_code == 200
    assert seen[0]["requestContext"]["authorizer"]["jwt"]["claims"]["sub"] == "bob"


def test_the_page_routes_need_no_token(gateway):
    client, _ = gateway  # served by the template's WebPageFunction (not loaded here: 500, not 401)
    assert client.get("/").status_code != 401
    assert client.get("/web/auth.js").status_code != 401


# ------------------------------------------------------------------ the key set, fetched and cached


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_the_keys_are_fetched_once_and_cached(issuer):
    authorizer = JwtAuthorizer(ISSUER, [AUDIENCE], fetch=issuer.fetch)
    for _ in range(3):
        assert authorizer.claims(f"Bearer {token()}")["sub"] == "alice"
    assert issuer.fetched == [ISSUER + "/.well-known/openid-configuration", ISSUER + "/jwks"]


def test_a_rotated_key_is_fetched_again_but_unknown_kids_do_not_hammer_the_issuer(issuer):
    clock = Clock()
    authorizer = JwtAuthorizer(ISSUER, [AUDIENCE], fetch=issuer.fetch, clock=clock)
    authorizer.claims(token())
    issuer.keys.append(public_jwk(OTHER_KEY, "key-2"))  # the issuer rotates
    with pytest.raises(Unauthorized):  # within a minute of the last fetch: not fetched again
        authorizer.claims(token(key=OTHER_KEY, kid="key-2"))
    clock.now += REFETCH_SECONDS
    assert authorizer.claims(token(key=OTHER_KEY, kid="key-2"))["sub"] == "alice"
    assert len(issuer.fetched) == 4


def test_an_unreachable_issuer_is_401_not_500():
    def down(url: str) -> dict[str, Any]:
        raise OSError("connection refused")

    with pytest.raises(Unauthorized, match="could not be fetched"):
        JwtAuthorizer(ISSUER, [AUDIENCE], fetch=down).claims(token())


def test_claims_are_passed_as_strings():
    assert claim_strings({"exp": 5, "email_verified": True, "groups": ["x", "y"], "sub": "s"}) == {
        "exp": "5", "email_verified": "true", "groups": "[x y]", "sub": "s"}
