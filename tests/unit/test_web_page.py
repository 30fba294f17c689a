"""The page's function (WebPageFunction, usage_ledger/http/page.py) through the template's routes:
web/ files, the sign-in configuration from the template's parameters, nothing else."""
from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from infra.apigw import ANONYMOUS, find_route, http_event, routes_of
from infra.lambdas import FakeLambdaContext, load_handler
from infra.stack import ROOT, Stack, default_parameters
from infra.template import load_template

TEMPLATE = load_template()
STACK = Stack(template=TEMPLATE, parameters=default_parameters(TEMPLATE) | {"JwtIssuer": "https://login.test/pool/"})


@pytest.fixture(autouse=True)
def page_environment(monkeypatch):
    own = TEMPLATE["Resources"]["WebPageFunction"]["Properties"]["Environment"]["Variables"]
    for name, value in own.items():  # the function's own variables, as the template resolves them
        monkeypatch.setenv(name, str(STACK.resolve(value)))
    monkeypatch.delenv("LAMBDA_TASK_ROOT", raising=False)
    monkeypatch.delenv("USAGE_LEDGER_LOCAL_USER_HEADER", raising=False)
    monkeypatch.delenv("STRIPE_API_BASE", raising=False)  # a global of the template: the tests below set it


def get(path: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    found = find_route(routes_of(STACK), "GET", path)
    assert found, f"no template route for GET {path}"
    route, params = found
    assert route.function == "WebPageFunction" and route.authorizer == "NONE"
    event = http_event(route, path, params, identity=ANONYMOUS, headers=headers)
    return load_handler(STACK, "WebPageFunction")(event, FakeLambdaContext("WebPageFunction"))


def body(response: dict[str, Any]) -> bytes:
    raw = response["body"]
    return base64.b64decode(raw) if response.get("isBase64Encoded") else raw.encode()


def test_the_root_is_the_page_with_a_csp_naming_the_issuer():
    response = get("/")
    assert response["statusCode"] == 200
    assert response["headers"]["Content-Type"] == "text/html; charset=utf-8"
    assert body(response) == (ROOT / "web" / "index.html").read_bytes()
    csp = response["headers"]["Content-Security-Policy"]
    assert "script-src 'self';" in csp and "connect-src 'self' https://login.test https:;" in csp
    assert "frame-ancestors 'none'" in csp
    assert response["headers"]["Referrer-Policy"] == "no-referrer"


@pytest.mark.parametrize("name, content_type", [("auth.js", "text/javascript"), ("app.js", "text/javascript"),
                                                ("styles.css", "text/css")])
def test_the_page_files_are_served_under_web(name, content_type):
    response = get(f"/web/{name}")
    assert response["statusCode"] == 200
    assert response["headers"]["Content-Type"] == f"{content_type}; charset=utf-8"
    assert body(response) == (ROOT / "web" / name).read_bytes()


def test_the_config_comes_from_the_template_parameters():
    response = get("/web/config.json")
    assert response["statusCode"] == 200 and response["headers"]["Cache-Control"] == "no-store"
    config = json.loads(body(response))
    assert config["issuer"] == "https://login.test/pool"
    assert config["clientId"] == STACK.parameters["JwtAudience"]
    assert config["scope"] == "openid" and config["apiBase"] == ""
    assert config["localUserHeader"] is False  # only the local runner turns the header shortcut on


def test_the_header_shortcut_is_offered_only_where_the_local_runner_says_so(monkeypatch):
    monkeypatch.setenv("USAGE_LEDGER_LOCAL_USER_HEADER", "1")
    assert json.loads(body(get("/web/config.json")))["localUserHeader"] is True


def test_an_unchanged_file_is_not_sent_again():
    first = get("/web/auth.js")
    again = get("/web/auth.js", headers={"If-None-Match": first["headers"]["ETag"]})
    assert again["statusCode"] == 304 and again["body"] == ""
    assert get("/web/auth.js", headers={"If-None-Match": '"other"'})["statusCode"] == 200


@pytest.mark.parametrize("path", ["/web/../template.yaml", "/web/..%2Ftemplate.yaml", "/web/nope.js",
                                  "/web/.hidden", "/web/", "/web//etc/passwd", "/web/a/../../pyproject.toml"])
def test_nothing_outside_web_nor_absent_is_served(path):
    found = find_route(routes_of(STACK), "GET", path)
    if found is None:
        return  # not even a route: API Gateway's own 404
    response = get(path)
    assert response["statusCode"] == 404
    assert json.loads(body(response))["status"] == 404


def test_in_lambda_the_files_are_the_functions_code(monkeypatch, tmp_path):
    """As packaging/Makefile builds it: web/ under web/, the handler's package beside it (not served)."""
    (tmp_path / "web").mkdir()
    (tmp_path / "web" / "index.html").write_text("<!doctype html><title>deployed</title>")
    (tmp_path / "usage_ledger" / "http").mkdir(parents=True)
    (tmp_path / "usage_ledger" / "http" / "page.py").write_text("# the handler")
    monkeypatch.setenv("LAMBDA_TASK_ROOT", str(tmp_path))
    assert body(get("/")) == b"<!doctype html><title>deployed</title>"
    assert get("/web/app.js")["statusCode"] == 404
    assert get("/web/../usage_ledger/http/page.py")["statusCode"] == 404


@pytest.mark.parametrize("api_base, js_url, script_src, connect_src", [
    ("https://api.stripe.com", "https://js.stripe.com/v3/", "'self' https://js.stripe.com",
     "'self' https://login.test https://api.stripe.com https:"),
    ("http://127.0.0.1:8420/", "http://127.0.0.1:8420/js.stripe.com/v3/", "'self' http://127.0.0.1:8420",
     "'self' https://login.test http://127.0.0.1:8420 https:"),
])
def test_stripe_js_is_named_in_the_config_and_allowed_by_the_csp(monkeypatch, api_base, js_url, script_src,
                                                                  connect_src):
    """The template's StripeApiBase (a global variable): Stripe's own Stripe.js, or localstripe's copy."""
    monkeypatch.setenv("STRIPE_API_BASE", api_base)
    assert json.loads(body(get("/web/config.json")))["stripeJsUrl"] == js_url
    csp = get("/")["headers"]["Content-Security-Policy"]
    assert f"script-src {script_src};" in csp and f"connect-src {connect_src};" in csp
    assert f"frame-src {script_src.removeprefix(chr(39) + 'self' + chr(39) + ' ')};" in csp


def test_without_a_stripe_api_base_the_page_loads_no_stripe_js(monkeypatch):
    monkeypatch.delenv("STRIPE_API_BASE", raising=False)
    assert json.loads(body(get("/web/config.json")))["stripeJsUrl"] is None
    assert "frame-src" not in get("/")["headers"]["Content-Security-Policy"]
