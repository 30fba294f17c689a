"""The committed OpenAPI document is what the handlers describe, and it covers exactly the template's routes."""
import json

from infra import openapi
from infra.apigw import routes_of
from infra.template import load_template


def committed() -> dict:
    return json.loads(openapi.OUTPUT.read_text(encoding="utf-8"))


def test_the_committed_document_is_what_the_handlers_generate():
    generated = openapi.render(openapi.build())
    assert openapi.OUTPUT.read_text(encoding="utf-8") == generated, (
        "docs/openapi.json is stale: run `python -m infra.openapi` (or `make openapi`) and commit it")


def test_every_template_route_is_documented_and_nothing_else():
    routes = {(route.method.lower(), route.path) for route in routes_of(openapi.template_stack())}
    documented = {(method, path) for path, operations in committed()["paths"].items() for method in operations}
    assert documented == routes


def test_each_route_declares_the_authorizer_the_template_gives_it():
    template = load_template()
    assert "TeamJwtAuthorizer" in template["Resources"]["HttpApi"]["Properties"]["Auth"]["Authorizers"]
    expected = {(route.method.lower(), route.path): "awsSigV4" if route.authorizer == "AWS_IAM" else "teamJwt"
                for route in routes_of(openapi.template_stack())}
    document = committed()
    for (method, path), scheme in expected.items():
        assert document["paths"][path][method]["security"] == [{scheme: []}], (method, path)
    assert set(document["components"]["securitySchemes"]) == {"awsSigV4", "teamJwt"}


def test_errors_are_documented_as_problem_json():
    document = committed()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if status.startswith("4"):
                    assert list(response["content"]) == ["application/problem+json"], (method, path, status)
    assert "HTTPValidationError" not in json.dumps(document)
