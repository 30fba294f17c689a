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
    # the page's public routes (authorizer NONE: web/ files) are not the API
    routes = {(route.method.lower(), route.path) for route in routes_of(openapi.template_stack())
              if route.authorizer != "NONE"}
    documented = {(method, path) for path, operations in committed()["paths"].items() for method in operations}
    assert documented == routes


def test_each_route_declares_the_authorizer_the_template_gives_it():
    template = load_template()
    assert "TeamJwtAuthorizer" in template["Resources"]["HttpApi"]["Properties"]["Auth"]["Authorizers"]
    expected = {(route.method.lower(), route.path): "awsSigV4" if route.authorizer == "AWS_IAM" else "teamJwt"
                for route in routes_of(openapi.template_stack()) if route.authorizer != "NONE"}
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


def _schemas_under(document: dict, schema: dict, seen: set[str] | None = None):
    """The schema and every schema it refers to or holds (properties, items, anyOf ...)."""
    seen = set() if seen is None else seen
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        if name in seen:
            return
        seen.add(name)
        schema = document["components"]["schemas"][name]
    yield schema
    children = [*schema.get("properties", {}).values(), *schema.get("anyOf", []), *schema.get("oneOf", [])]
    if isinstance(schema.get("items"), dict):
        children.append(schema["items"])
    for child in children:
        yield from _schemas_under(document, child, seen)


def test_every_success_with_a_body_has_its_schema():
    document = committed()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            successes = {status: response for status, response in operation["responses"].items()
                         if status.startswith("2")}
            assert successes, (method, path)
            for status, response in successes.items():
                if status == "204":
                    assert "content" not in response, (method, path)
                    continue
                schema = response["content"]["application/json"]["schema"]
                assert schema["$ref"].startswith("#/components/schemas/"), (method, path, status)


def test_success_schemas_type_fields_as_the_server_sends_them():
    """Closed objects, numbers never strings (a Decimal is a JSON number), dates and instants with
    their formats, enums where the contract has them."""
    document = committed()
    names: set[str] = set()
    for operations in document["paths"].values():
        for operation in operations.values():
            for status, response in operation["responses"].items():
                if status.startswith("2") and "content" in response:
                    for schema in _schemas_under(document, response["content"]["application/json"]["schema"]):
                        if schema.get("type") == "object":
                            assert schema.get("additionalProperties") is False, schema.get("title")
                            names.update(schema["properties"])
                        types = {branch.get("type") for branch in schema.get("anyOf", [])}
                        assert not {"number", "string"} <= types, schema  # a number is never sent as text
    schemas = document["components"]["schemas"]
    card = schemas["BalanceCard"]["properties"]
    assert card["charge_unit_size"] == {"title": "Charge Unit Size", "type": "number"}
    assert card["pending_usage"]["type"] == "number"
    assert card["status"]["enum"] == ["ok", "low", "exhausted"]
    assert card["projected_depletion_date"]["anyOf"] == [{"format": "date", "type": "string"}, {"type": "null"}]
    assert schemas["Balances"]["properties"]["as_of"]["format"] == "date-time"
    assert schemas["Entitlement"]["properties"]["covered_by"]["anyOf"][0]["enum"] == ["prepaid", "payg"]
    report = schemas["UsageReport"]["properties"]
    assert report["from"]["format"] == "date" and report["granularity"]["enum"] == ["day", "month"]
    assert report["group_by"]["enum"] == ["resource", "user", "app"]
    assert schemas["Banner"]["properties"]["level"]["enum"] == ["warning", "error"]
    assert {"kind", "type", "status", "covered_by", "level", "next_cursor"} <= names


def test_documented_statuses_include_what_the_routes_can_give():
    paths = committed()["paths"]
    # a change of kind or charge_unit_size once set (tests/functional/test_operator.py)
    assert "409" in paths["/v1/admin/resources/{resource_id}"]["put"]["responses"]
    assert set(paths["/v1/admin/resources/{resource_id}"]["put"]["responses"]) >= {"200", "201"}
    assert "202" in paths["/v1/events"]["post"]["responses"]
    # the guard answers 404 for a team_id that is no member's, and nothing else is validated
    assert "422" not in paths["/v1/teams/{team_id}/balances"]["get"]["responses"]
    assert "422" in paths["/v1/teams/{team_id}/usage"]["get"]["responses"]


def test_requests_are_typed_as_the_server_accepts_them():
    """A number the server takes only as a JSON number is documented as one (not number-or-string),
    instants with their format, the report's query with its formats and enums."""
    document = committed()
    schemas = document["components"]["schemas"]
    resource = schemas["ResourceBody"]["properties"]
    assert resource["charge_unit_size"]["type"] == "number" and resource["charge_unit_size"]["default"] == 1
    assert resource["low_balance_percent"]["type"] == "number" and resource["low_balance_percent"]["default"] == 10
    assert schemas["UsageData"]["properties"]["quantity"]["type"] == "number"
    assert schemas["SubscriptionBody"]["properties"]["starts_at"]["format"] == "date-time"
    query = {parameter["name"]: parameter["schema"]
             for parameter in document["paths"]["/v1/teams/{team_id}/usage"]["get"]["parameters"]}
    assert query["from"]["format"] == query["to"]["format"] == "date"
    assert query["granularity"]["enum"] == ["day", "month"]
    assert query["group_by"]["enum"] == ["resource", "user", "app"]
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for parameter in operation.get("parameters", []):
                assert "anyOf" not in parameter["schema"], (method, path, parameter["name"])  # never null
