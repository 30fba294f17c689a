"""docs/openapi.json checked from outside: schemathesis generates requests from the document for every
operation, sends them to the local stack (`python -m infra.local`) with the caller's identity, and
checks every answer against the document (issue 17 part 6).

All of schemathesis' checks run (`not_a_server_error`, status codes, content types, response
headers and bodies against their schemas, negative data rejected, ...), except:
- `ignored_auth`: the local stack takes identity from `X-Local-User` / `X-Local-Operator`, which the
  document does not describe (it names API Gateway's JWT and SigV4 authorizers, which the local stack
  stands in for); leaving out the headers is covered by tests/security/.
- `unsupported_method` and `allow_header_conformance` (a 405 with `Allow` for a method no route
  takes): API Gateway HTTP APIs answer such a request 404 before any handler runs, and the local
  stack does as they do; neither the document nor the handlers can change it.
- `positive_data_acceptance` runs with the statuses a well-formed request can still get from the
  business rules the document cannot express (an unknown team or resource is a 404, a subscription
  whose `resource_id` is no catalogue resource or whose `ends_at` is before its `starts_at` a 422,
  a repeated alert configuration a 409): what it still catches is a schema-valid request answered
  400, 401, 403 or 415.

Bounded: 10 examples per operation (about 50 s with the stack's start), and the team routes point
at the demo team (`team-demo`, `alice` its primary admin) so that they answer 200s with bodies to
check, not only 404s. What generated requests seldom reach (a 201 alert, a 202 event, the operator's
writes of a fresh team) is sent by hand and its answer checked against the same document.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
import requests
import schemathesis
from local_stack import start_local_stack
from schemathesis.config import SchemathesisConfig

from infra.openapi import OUTPUT

pytestmark = pytest.mark.e2e

MAX_EXAMPLES = 10
OPERATOR_PATHS = re.compile(r"^/v1/(admin/|events$|teams/\{team_id\}/entitlements/)")
CONFIG = f"""
[generation]
max-examples = {MAX_EXAMPLES}
deterministic = true
database = "none"
# the document's security schemes are API Gateway's (JWT, SigV4); the local stack stands in for
# them with identity headers, sent with every request (identity() below)
with-security-parameters = false

[checks]
ignored_auth.enabled = false
unsupported_method.enabled = false
allow_header_conformance.enabled = false
positive_data_acceptance.expected-statuses = ["2xx", "404", "409", "422"]

[parameters]
"path.team_id" = "team-demo"

# reads of one resource: the demo team's processing minutes (an api resource alice may see)
[[operations]]
include-method = "GET"
include-path-regex = "[{{]resource_id[}}]$"
parameters = {{ "path.team_id" = "team-demo", "path.resource_id" = "processing-minutes" }}
"""

schema = schemathesis.openapi.from_path(OUTPUT, config=SchemathesisConfig.from_str(CONFIG))


def identity(path: str) -> dict[str, str]:
    """The local stack's stand-in for the operation's authorizer: IAM for operator and producer
    routes, alice (team-demo's primary admin) for team routes."""
    return {"X-Local-Operator": "1"} if OPERATOR_PATHS.match(path) else {"X-Local-User": "alice"}


@pytest.fixture(scope="module")
def base_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    return start_local_stack(request, tmp_path_factory)


@schema.parametrize()
def test_the_api_answers_as_its_document_says(case, base_url):
    case.call_and_validate(base_url=base_url, headers=identity(case.operation.path), timeout=30)


# what generated requests seldom reach (a valid alert configuration of admins, an event of an
# existing team and resource): made by hand, answers checked against the same document
KNOWN_GOOD = [
    ("PUT", "/v1/admin/teams/{team_id}", {"team_id": "team-st"}, {"name": "Schemathesis"}, 200),
    ("PUT", "/v1/admin/teams/{team_id}/members/{user_id}", {"team_id": "team-st", "user_id": "st-admin"},
     {"email": "st@example.com", "roles": ["primary_admin"], "full_access": True}, 200),
    ("PUT", "/v1/admin/teams/{team_id}/apps/{app_id}", {"team_id": "team-st", "app_id": "st-app"},
     {"name": "App", "owner_user_id": "st-admin"}, 200),
    ("POST", "/v1/events", {}, {"specversion": "1.0", "id": "st-1", "source": "urn:schemathesis",
                                "type": "usage.recorded", "subject": "team-demo", "time": None,
                                "data": {"resource_id": "processing-minutes", "quantity": 1.5, "user_id": "alice"}},
     202),
    ("POST", "/v1/teams/{team_id}/alerts", {"team_id": "team-demo"},
     {"name": "Schemathesis", "windows_days": [5], "resource_ids": ["asset", "processing-minutes"],
      "recipient_user_ids": ["alice"]}, 201),
    ("GET", "/v1/teams/{team_id}/alerts", {"team_id": "team-demo"}, None, 200),
    ("GET", "/v1/teams/{team_id}/usage", {"team_id": "team-demo"}, None, 200),
    ("GET", "/v1/teams/{team_id}/invoices", {"team_id": "team-demo"}, None, 200),
]


def test_known_good_requests_answer_as_the_document_says(base_url):
    for method, path, parameters, body, status in KNOWN_GOOD:
        if body is not None and "time" in body:
            body = {**body, "time": datetime.now(UTC).isoformat(timespec="seconds")}
        headers = {**identity(path), "Accept": "application/json"}
        if path == "/v1/events":
            headers["Content-Type"] = "application/cloudevents+json"
        query = {"group_by": "user", "granularity": "month"} if path.endswith("/usage") else None
        response = requests.request(method, base_url + path.format(**parameters), json=body, params=query,
                                    headers=headers, timeout=30)
        assert response.status_code // 100 == status // 100, (method, path, response.status_code, response.text)
        schema[path][method].validate_response(response)
        if path.endswith("/alerts") and method == "POST":
            alert = response.json()
            one = requests.get(f"{base_url}/v1/teams/team-demo/alerts/{alert['alert_id']}", headers=identity(path),
                               timeout=30)
            assert one.status_code == 200, one.text
            schema["/v1/teams/{team_id}/alerts/{alert_id}"]["GET"].validate_response(one)
