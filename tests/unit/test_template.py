"""template.yaml is deployable as written: authorization, least privilege, operations, contract shape, lint.

Read with infra.template.load_template (short-form tags kept as {"Ref": ...} / {"Fn::X": ...} dicts,
Fn::ForEach loops expanded as AWS::LanguageExtensions does), so these checks see exactly what
`sam deploy` and the moto runner see, before the SAM transform.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from typing import Any

import pytest

from infra.template import ROOT, TEMPLATE_PATH, expand, load_raw_template, load_template

TEMPLATE = load_template()
RESOURCES: dict[str, dict[str, Any]] = TEMPLATE["Resources"]
GLOBAL_FUNCTION: dict[str, Any] = TEMPLATE.get("Globals", {}).get("Function", {})


def of_type(type_: str) -> dict[str, dict[str, Any]]:
    return {logical: res.get("Properties", {}) for logical, res in RESOURCES.items() if res["Type"] == type_}


FUNCTIONS = of_type("AWS::Serverless::Function")
MANAGED_POLICIES = of_type("AWS::IAM::ManagedPolicy")
# the policies operators attach to the roles that call the IAM routes (not to functions): which
# routes each may invoke, named by the function whose HttpApi events they are
CALLER_POLICIES = {"OperatorInvokePolicy": "OperatorApiFunction", "ProducerInvokePolicy": "ProducerApiFunction"}
FUNCTION_POLICIES = {logical: props for logical, props in MANAGED_POLICIES.items() if logical not in CALLER_POLICIES}
TEMPLATE_TABLES = of_type("AWS::DynamoDB::Table")
TABLES = set(TEMPLATE_TABLES)
QUEUES = set(of_type("AWS::SQS::Queue"))
ALARMS = of_type("AWS::CloudWatch::Alarm")


def ref(value: Any) -> str | None:
    """The logical id a {"Ref": x} or {"Fn::GetAtt": [x, attr]} points at."""
    if isinstance(value, dict):
        if "Ref" in value:
            return value["Ref"]
        if "Fn::GetAtt" in value:
            return value["Fn::GetAtt"][0]
    return None


def events(function: str, type_: str) -> dict[str, dict[str, Any]]:
    return {
        name: event.get("Properties", {})
        for name, event in (FUNCTIONS[function].get("Events") or {}).items()
        if event["Type"] == type_
    }


# ------------------------------------------------------------------------- 1. authorization

HTTP_API = RESOURCES["HttpApi"]["Properties"]
JWT_AUTHORIZER = HTTP_API["Auth"]["DefaultAuthorizer"]
PRODUCER_ROUTES = {("POST", "/v1/events"), ("GET", "/v1/teams/{team_id}/entitlements/{resource_id}")}
# the page: public (it signs in by itself), files only, served by a function that reads no data
PAGE_ROUTES = {("GET", "/"), ("GET", "/web/{proxy+}")}
# the processor's events: public (Stripe cannot sign in), each request verified by its signature
PROCESSOR_ROUTES = {("POST", "/v1/stripe/webhooks")}


def http_routes() -> list[tuple[str, str, str, str | None]]:
    """(METHOD, path, function, effective authorizer) for every HttpApi event in the template."""
    routes = []
    for function in FUNCTIONS:
        for props in events(function, "HttpApi").values():
            auth = props.get("Auth") or {}
            authorizer = auth["Authorizer"] if "Authorizer" in auth else HTTP_API["Auth"].get("DefaultAuthorizer")
            routes.append((props["Method"].upper(), props["Path"], function, authorizer))
    return routes


def route_kind(method: str, path: str) -> str:
    if (method, path) in PAGE_ROUTES:
        return "page"
    if (method, path) in PROCESSOR_ROUTES:
        return "processor"
    if path.startswith("/v1/admin/"):
        return "operator"
    if (method, path) in PRODUCER_ROUTES:
        return "producer"
    return "team"


def test_jwt_authorizer_is_the_default_and_takes_issuer_and_audience_from_parameters():
    auth = HTTP_API["Auth"]
    assert auth.get("EnableIamAuthorizer") is True
    jwt = auth["Authorizers"][JWT_AUTHORIZER]
    assert jwt["IdentitySource"] == "$request.header.Authorization"
    assert jwt["JwtConfiguration"]["issuer"] == {"Ref": "JwtIssuer"}
    assert jwt["JwtConfiguration"]["audience"] == [{"Ref": "JwtAudience"}]
    assert {"JwtIssuer", "JwtAudience"} <= set(TEMPLATE["Parameters"])


def test_every_route_is_on_the_http_api_and_has_the_authorizer_of_its_kind():
    routes = http_routes()
    kinds = {route_kind(method, path) for method, path, _, _ in routes}
    assert kinds == {"operator", "producer", "team", "page", "processor"}, routes
    assert {(method, path) for method, path, _, _ in routes} >= PRODUCER_ROUTES
    for function in FUNCTIONS:
        for name, props in events(function, "HttpApi").items():
            assert props.get("ApiId") == {"Ref": "HttpApi"}, f"{function}.{name} is not on HttpApi"
    problems = []
    for method, path, function, authorizer in routes:
        kind = route_kind(method, path)
        if kind in ("page", "processor"):
            if authorizer != "NONE":
                problems.append(f"{kind} route {method} {path} must say Authorizer NONE, is {authorizer}")
        elif authorizer in (None, "", "NONE"):
            problems.append(f"{method} {path} ({function}) has no authorizer")
        elif kind in ("operator", "producer") and authorizer != "AWS_IAM":
            problems.append(f"{kind} route {method} {path} must be AWS_IAM, is {authorizer}")
        elif kind == "team" and authorizer != JWT_AUTHORIZER:
            problems.append(f"team route {method} {path} must use {JWT_AUTHORIZER}, is {authorizer}")
    assert not problems, problems


def test_routes_are_served_by_the_function_of_their_kind():
    owner = {"operator": "OperatorApiFunction", "producer": "ProducerApiFunction", "team": "TeamApiFunction",
             "page": "WebPageFunction", "processor": "StripeWebhooksFunction"}
    wrong = [
        (method, path, function)
        for method, path, function, _ in http_routes()
        if function != owner[route_kind(method, path)]
    ]
    assert not wrong, wrong


# ------------------------------------------------------------------------- 1b. who may call the IAM routes

# execute-api resources are `<API ARN>/<stage>/<METHOD>/<path>`; in IAM, `*` matches any characters
# (slashes too) and `?` any one. A route's path parameters match one or more characters other than
# a slash ({proxy+}: any). A pattern grants a route when some request to the route matches it.
API_ARN = "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${HttpApi}/"
ANY, SEGMENT = "any", "segment"  # character classes: anything; anything but "/"


def _glob_tokens(pattern: str) -> list[tuple[str, bool]]:
    """(character class or literal, repeats) per pattern character."""
    return [(ANY, True) if c == "*" else (ANY, False) if c == "?" else (c, False) for c in pattern]


def _route_tokens(method: str, path: str) -> list[tuple[str, bool]]:
    tokens = [(SEGMENT, False), (SEGMENT, True)]  # the stage: any name
    for part in re.split(r"(\{[^}]+\})", f"/{method}{path}"):
        if part.startswith("{"):
            kind = ANY if part.endswith("+}") else SEGMENT
            tokens += [(kind, False), (kind, True)]  # one or more characters
        else:
            tokens += [(c, False) for c in part]
    return tokens


def _overlap(a: str, b: str) -> bool:
    """Whether some character is in both (classes or literals)."""
    if a in (ANY, SEGMENT) and b in (ANY, SEGMENT):
        return True
    literal, other = (b, a) if a in (ANY, SEGMENT) else (a, b)
    return other in (ANY, literal) or (other == SEGMENT and literal != "/")


def grants(pattern: str, method: str, path: str) -> bool:
    """Whether an execute-api resource pattern (after the API's ARN) matches some request to the
    route: the two languages intersect (a walk over pairs of positions in both)."""
    glob, route = _glob_tokens(pattern), _route_tokens(method, path)
    seen: set[tuple[int, int]] = set()
    todo = [(0, 0)]
    while todo:
        i, j = todo.pop()
        if (i, j) in seen:
            continue
        seen.add((i, j))
        if i == len(glob) and j == len(route):
            return True
        if i < len(glob) and glob[i][1]:
            todo.append((i + 1, j))  # a `*` that matches nothing (more)
        if j < len(route) and route[j][1]:
            todo.append((i, j + 1))  # a parameter's last character behind us
        if i < len(glob) and j < len(route) and _overlap(glob[i][0], route[j][0]):
            todo.append((i if glob[i][1] else i + 1, j if route[j][1] else j + 1))
    return False


@pytest.mark.parametrize("pattern, method, path, expected", [
    ("*/POST/v1/events", "POST", "/v1/events", True),
    ("*/POST/v1/events", "GET", "/v1/events", False),
    ("*/POST/v1/events", "POST", "/v1/events/{id}", False),
    ("$default/POST/v1/events", "POST", "/v1/events", True),
    ("*/GET/v1/teams/*/entitlements/*", "GET", "/v1/teams/{team_id}/entitlements/{resource_id}", True),
    ("*/GET/v1/teams/*/entitlements/*", "GET", "/v1/teams/{team_id}/balances/{resource_id}", False),
    ("*/PUT/v1/admin/teams/*", "PUT", "/v1/admin/teams/{team_id}/members/{user_id}", True),  # `*` takes slashes
    ("*/*/v1/admin/*", "DELETE", "/v1/admin/teams/{team_id}", True),
    ("*/GET/v1/teams/?", "GET", "/v1/teams/{team_id}", True),
    ("*/GET/v1/teams/?/x", "GET", "/v1/teams/{team_id}/{rest+}", True),
    ("*/GET/v1/teams/a/b", "GET", "/v1/teams/{team_id}", False),  # a parameter never holds a slash
    ("*/GET/v1/teams/a/b", "GET", "/v1/teams/{proxy+}", True),
    ("*/GET/v1/teams//balances", "GET", "/v1/teams/{team_id}/balances", False),  # nor is empty
    ("*", "GET", "/v1/teams/{team_id}/balances", True),
])
def test_the_execute_api_matcher(pattern, method, path, expected):
    assert grants(pattern, method, path) is expected


def invoke_patterns(policy: str) -> list[str]:
    """The policy's execute-api resources after this API's ARN (they must be built from it)."""
    patterns = []
    for statement in as_list(MANAGED_POLICIES[policy]["PolicyDocument"]["Statement"]):
        assert statement["Effect"] == "Allow" and as_list(statement["Action"]) == ["execute-api:Invoke"], statement
        assert not {"NotAction", "NotResource", "NotPrincipal"} & set(statement), statement
        for resource in as_list(statement["Resource"]):
            text = resource.get("Fn::Sub") if isinstance(resource, dict) else None
            assert isinstance(text, str) and text.startswith(API_ARN), f"{policy}: {resource} is not on HttpApi"
            patterns.append(text.removeprefix(API_ARN))
    return patterns


@pytest.mark.parametrize("policy", sorted(CALLER_POLICIES))
def test_each_callers_policy_grants_exactly_its_functions_routes(policy):
    # only an IAM route checks these policies: `*/PUT/...` "matching" the page's GET /web/{proxy+}
    # that ends in /PUT/..., or `*/GET/v1/teams/*/entitlements/*` a JWT route of the contract's with
    # a free segment before more (GET .../invoices/{invoice_id}/credit-notes/{id}), grants nothing
    routes = [(method, path, function) for method, path, function, auth in http_routes() if auth == "AWS_IAM"]
    own = {(method, path) for method, path, function in routes if function == CALLER_POLICIES[policy]}
    patterns = invoke_patterns(policy)
    granted = {(method, path) for method, path, _ in routes if any(grants(p, method, path) for p in patterns)}
    assert own and granted == own, {"missing": own - granted, "beyond its routes": granted - own}
    for index, pattern in enumerate(patterns):  # no line that grants nothing new: a stale route, or one
        others = patterns[:index] + patterns[index + 1:]  # that reads as if removing it revoked something
        alone = {(m, p) for m, p in own if grants(pattern, m, p) and not any(grants(o, m, p) for o in others)}
        assert alone, f"{policy}: {pattern} grants no route the policy's other lines do not"


def test_neither_callers_policy_grants_the_others_routes():
    granted = {
        policy: {(m, p) for m, p, _, auth in http_routes()  # the routes that check them (see above)
                 if auth == "AWS_IAM" and any(grants(x, m, p) for x in invoke_patterns(policy))}
        for policy in CALLER_POLICIES
    }
    operator, producer = granted["OperatorInvokePolicy"], granted["ProducerInvokePolicy"]
    assert operator and producer and not operator & producer
    assert all(route_kind(*route) == "operator" for route in operator)
    assert all(route_kind(*route) == "producer" for route in producer) and producer == PRODUCER_ROUTES


@pytest.mark.parametrize("policy", sorted(CALLER_POLICIES))
def test_each_callers_policy_is_an_exported_output(policy):
    output = TEMPLATE["Outputs"][f"{policy}Arn"]
    assert output["Value"] == {"Ref": policy}  # a managed policy's Ref is its ARN
    assert output["Export"]["Name"] == {"Fn::Sub": f"${{AWS::StackName}}-{policy}Arn"}


# ------------------------------------------------------------------------- 2. least privilege

# What each function does with each table, queue and the SES identity (see shared/usage_ledger/adapters).
# "read" means read-only: a write policy (Crud/Write) on such a table fails the test.
EXPECTED_ACCESS: dict[str, set[tuple[str, str]]] = {
    "OperatorApiFunction": {("write", "LedgerTable"), ("secret", "StripeSecretName"), ("email", "SenderEmail")},
    "ProducerApiFunction": {("read", "LedgerTable"), ("send", "EventsFifoQueue")},
    "TeamApiFunction": {("write", "LedgerTable"), ("read", "UsageTable"), ("secret", "StripeSecretName"),
                        ("email", "SenderEmail")},
    "IngestFunction": {("write", "LedgerTable"), ("write", "UsageTable"), ("write", "DedupeTable"),
                       ("visibility", "EventsFifoQueue")},
    # the scheduled runs only list what is due and enqueue it; their workers write and email
    "CloseBillingCyclesFunction": {("read", "LedgerTable"), ("send", "BillingWorkQueue")},
    "CloseBillingCyclesWorkerFunction": {("write", "LedgerTable"), ("email", "SenderEmail"),
                                         ("secret", "StripeSecretName")},
    "EvaluateAlertsFunction": {("read", "LedgerTable"), ("send", "AlertsWorkQueue")},
    "EvaluateAlertsWorkerFunction": {("write", "LedgerTable"), ("email", "SenderEmail")},
    "BalanceChangedAlertsFunction": {("write", "LedgerTable"), ("email", "SenderEmail")},
    "WebPageFunction": set(),
    # a succeeded PaymentIntent pays its invoice (and emails the receipt); each event id is marked once
    "StripeWebhooksFunction": {("write", "LedgerTable"), ("mark", "DedupeTable"), ("secret", "StripeSecretName"),
                               ("secret", "StripeWebhookSecretName"), ("email", "SenderEmail")},
}
WRITE_TEMPLATES = {"DynamoDBCrudPolicy", "DynamoDBWritePolicy"}
READ_TEMPLATES = {"DynamoDBReadPolicy"}
SES_SEND_ACTIONS = {"ses:SendEmail", "ses:SendRawEmail"}


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def mentions(value: Any, name: str) -> bool:
    return name in json.dumps(value)


def statements_of(function: str) -> list[dict[str, Any]]:
    """The IAM statements of the function's inline policies and of the template's managed policies it lists."""
    found = []
    for policy in as_list(FUNCTIONS[function].get("Policies", [])):
        if isinstance(policy, dict) and "Statement" in policy:
            found += as_list(policy["Statement"])
        elif ref(policy) in MANAGED_POLICIES:
            found += as_list(MANAGED_POLICIES[ref(policy)]["PolicyDocument"]["Statement"])
    return found


def access_of(function: str) -> tuple[set[tuple[str, str]], list[str]]:
    """What the function's Policies grant, as (verb, target) pairs, plus anything not understood."""
    granted: set[tuple[str, str]] = set()
    problems: list[str] = []
    for policy in as_list(FUNCTIONS[function].get("Policies", [])):
        if isinstance(policy, str) or (ref(policy) and ref(policy) not in MANAGED_POLICIES):
            problems.append(f"managed policy {policy} (use a scoped SAM policy template or one of the template's)")
            continue
        if "Statement" in policy or ref(policy) in MANAGED_POLICIES:
            document = MANAGED_POLICIES[ref(policy)]["PolicyDocument"] if ref(policy) else policy
            for statement in as_list(document["Statement"]):
                actions = set(as_list(statement.get("Action", [])))
                resources = as_list(statement.get("Resource", []))
                if statement.get("Effect") != "Allow" or "NotAction" in statement or "NotResource" in statement:
                    problems.append(f"unsupported statement {statement}")
                if not resources or any("*" in json.dumps(resource) for resource in resources):
                    problems.append(f"wildcard resource in {statement.get('Sid', statement)}")
                if any("*" in action for action in actions):
                    problems.append(f"wildcard action in {statement.get('Sid', statement)}")
                if actions and actions <= SES_SEND_ACTIONS and all(mentions(r, "SenderEmail") for r in resources):
                    granted.add(("email", "SenderEmail"))
                elif actions == {"sqs:ChangeMessageVisibility"} and len(resources) == 1 \
                        and resources[0] == {"Fn::GetAtt": ["EventsFifoQueue", "Arn"]}:
                    granted.add(("visibility", "EventsFifoQueue"))
                elif actions == {"dynamodb:PutItem", "dynamodb:DeleteItem"} and len(resources) == 1 \
                        and resources[0] == {"Fn::GetAtt": ["DedupeTable", "Arn"]}:
                    granted.add(("mark", "DedupeTable"))  # single items by key: no query, scan or batch
                else:
                    problems.append(f"inline statement not understood by this test: {statement}")
            continue
        (name, args), = policy.items()
        if name in WRITE_TEMPLATES | READ_TEMPLATES:
            table = ref(args["TableName"])
            granted.add(("write" if name in WRITE_TEMPLATES else "read", table))
        elif name == "SQSSendMessagePolicy":
            granted.add(("send", ref(args["QueueName"])))
        elif name == "AWSSecretsManagerGetSecretValuePolicy":
            # scoped to the one secret a parameter names (its ARN ends in a random suffix)
            arn = json.dumps(args["SecretArn"])
            named = [parameter for parameter in ("StripeSecretName", "StripeWebhookSecretName")
                     if f":secret:${{{parameter}}}-*" in arn]
            if named:
                granted.add(("secret", named[0]))
            else:
                problems.append(f"secret policy not scoped to the Stripe secret: {arn}")
        else:
            problems.append(f"policy template {name} not expected for any function")
    return granted, problems


@pytest.mark.parametrize("function", sorted(EXPECTED_ACCESS))
def test_function_holds_exactly_the_access_it_needs(function):
    granted, problems = access_of(function)
    assert not problems, problems
    written = {target for verb, target in granted if verb == "write"}
    read_only = {target for verb, target in granted if verb == "read"}
    assert not written & read_only, f"{function}: both read and write policies for {written & read_only}"
    expected_writes = {target for verb, target in EXPECTED_ACCESS[function] if verb == "write"}
    needless_writes = written - expected_writes
    assert not needless_writes, f"{function} holds write policies for tables it only reads: {needless_writes}"
    assert granted == EXPECTED_ACCESS[function]


def test_every_function_is_covered_by_the_access_table():
    assert set(FUNCTIONS) == set(EXPECTED_ACCESS)


def test_no_inline_or_template_managed_policy_has_a_wildcard_resource():
    for function in FUNCTIONS:
        for statement in statements_of(function):
            for resource in as_list(statement.get("Resource", [])):
                assert resource != "*" and "*" not in json.dumps(resource), (function, statement)
    for logical, props in FUNCTION_POLICIES.items():  # the callers' policies: section 1b proves theirs exact
        for statement in as_list(props["PolicyDocument"]["Statement"]):
            assert "*" not in json.dumps(statement.get("Resource", "*")), (logical, statement)


def test_the_template_managed_policies_reach_only_the_functions_that_list_them():
    for logical, props in MANAGED_POLICIES.items():
        assert not {"Roles", "Users", "Groups"} & set(props), f"{logical} is attached outside a function's Policies"
        listed = any({"Ref": logical} in as_list(f.get("Policies", [])) for f in FUNCTIONS.values())
        if logical in CALLER_POLICIES:
            assert not listed, f"{logical} is for the roles that call the API, not for a function"
        else:
            assert listed, f"{logical} unused"


def test_ses_send_is_limited_to_the_sender_address():
    emailing = sorted(function for function, access in EXPECTED_ACCESS.items() if ("email", "SenderEmail") in access)
    assert emailing == ["BalanceChangedAlertsFunction", "CloseBillingCyclesWorkerFunction",
                        "EvaluateAlertsWorkerFunction", "OperatorApiFunction", "StripeWebhooksFunction",
                        "TeamApiFunction"]
    for function in emailing:
        statements = [statement for statement in statements_of(function)
                      if set(as_list(statement["Action"])) & SES_SEND_ACTIONS]
        assert statements and all(
            statement["Condition"]["StringEquals"]["ses:FromAddress"] == {"Ref": "SenderEmail"}
            for statement in statements
        )


# ------------------------------------------------------------------------- 3. operations


def alarms_on(metric: str, dimension_ref: str) -> list[dict[str, Any]]:
    """Alarms on `metric` whose dimensions point at `dimension_ref` (plain or metric-math alarms)."""
    found = []
    for props in ALARMS.values():
        stats = [props] if "MetricName" in props else [
            item["MetricStat"]["Metric"] for item in props.get("Metrics", []) if "MetricStat" in item
        ]
        for stat in stats:
            if stat["MetricName"] == metric and any(ref(d["Value"]) == dimension_ref for d in stat["Dimensions"]):
                found.append(props)
                break
    return found


def dead_letter_queues() -> set[str]:
    """Every template queue that something dead-letters into (missing ones are the next test's job)."""
    targets = set()
    for props in of_type("AWS::SQS::Queue").values():
        targets.add(ref((props.get("RedrivePolicy") or {}).get("deadLetterTargetArn")))
    for function in FUNCTIONS:
        for type_ in ("DynamoDB", "Kinesis"):
            for props in events(function, type_).values():
                targets.add(ref(props.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")))
        for props in events(function, "Schedule").values():
            targets.add(ref((props.get("DeadLetterConfig") or {}).get("Arn")))
        invoke = FUNCTIONS[function].get("EventInvokeConfig") or {}
        targets.add(ref(invoke.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")))
    return targets & QUEUES


def test_every_async_source_has_a_dead_letter_queue():
    for function in FUNCTIONS:
        for name, props in events(function, "SQS").items():
            queue = RESOURCES[ref(props["Queue"])]["Properties"]
            assert "RedrivePolicy" in queue, f"{function}.{name}: source queue has no DLQ"
            assert props.get("FunctionResponseTypes") == ["ReportBatchItemFailures"]
        for name, props in {**events(function, "DynamoDB"), **events(function, "Kinesis")}.items():
            on_failure = props.get("DestinationConfig", {}).get("OnFailure", {})
            assert on_failure.get("Type") == "SQS" and ref(on_failure.get("Destination")) in QUEUES, (function, name)
            assert props.get("MaximumRetryAttempts") is not None, (
                f"{function}.{name} would retry a poison batch forever")
        schedules = {**events(function, "Schedule"), **events(function, "ScheduleV2")}
        for name, props in schedules.items():
            dlq = props.get("DeadLetterConfig") or {}
            assert dlq.get("Type") == "SQS" or ref(dlq.get("Arn")) in QUEUES, (function, name)
        if schedules:  # the schedule invokes asynchronously: failed runs go to an on-failure destination
            invoke = FUNCTIONS[function].get("EventInvokeConfig") or {}
            on_failure = invoke.get("DestinationConfig", {}).get("OnFailure", {})
            assert on_failure.get("Type") == "SQS" and ref(on_failure.get("Destination")) in QUEUES, function
    expected = {"EventsDeadLetterQueue", "EventsFifoDeadLetterQueue", "AlertsStreamDeadLetterQueue",
                "ScheduledRunsDeadLetterQueue", "BillingWorkDeadLetterQueue", "AlertsWorkDeadLetterQueue"}
    assert expected <= dead_letter_queues()


def test_the_schedule_dead_letter_queue_admits_only_this_stacks_rules():
    policy = of_type("AWS::SQS::QueuePolicy")["ScheduledRunsDeadLetterQueuePolicy"]
    assert policy["Queues"] == [{"Ref": "ScheduledRunsDeadLetterQueue"}]
    (statement,) = policy["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    rules = {ref(arn) for arn in statement["Condition"]["ArnEquals"]["aws:SourceArn"]}
    # SAM names the AWS::Events::Rule of a Schedule event <FunctionLogicalId><EventName>
    assert rules == {f"{function}{name}" for function in FUNCTIONS for name in events(function, "Schedule")}


@pytest.mark.parametrize("queue", sorted(dead_letter_queues()))
def test_every_dead_letter_queue_alarms_as_soon_as_a_message_lands(queue):
    found = alarms_on("ApproximateNumberOfMessagesVisible", queue)
    assert found, f"no depth alarm on {queue}"
    assert any(a["Threshold"] == 0 and a["ComparisonOperator"] == "GreaterThanThreshold" for a in found)


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_every_function_alarms_on_errors_and_throttles(function):
    assert alarms_on("Errors", function), f"{function}: no Errors alarm"
    assert alarms_on("Throttles", function), f"{function}: no Throttles alarm"


@pytest.mark.parametrize("table", sorted(TABLES))
def test_every_table_alarms_on_throttling(table):
    reads_and_writes = alarms_on("ReadThrottleEvents", table) and alarms_on("WriteThrottleEvents", table)
    assert reads_and_writes or alarms_on("ThrottledRequests", table), f"{table}: no throttling alarm"


@pytest.mark.parametrize("table", sorted(TABLES))
def test_every_table_outlives_the_stack_and_can_be_restored_to_a_point_in_time(table):
    """Contract section 5: deleting the stack, or a change that replaces a table, keeps its data."""
    assert RESOURCES[table].get("DeletionPolicy") == "Retain", table
    assert RESOURCES[table].get("UpdateReplacePolicy") == "Retain", table
    assert TEMPLATE_TABLES[table]["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}, table


def test_an_events_message_is_set_aside_on_the_receive_before_its_queue_would_dead_letter_it():
    from usage_ledger.retry import EVENTS_MAX_RECEIVES

    for queue in ("EventsFifoQueue", "EventsQueue"):
        assert RESOURCES[queue]["Properties"]["RedrivePolicy"]["maxReceiveCount"] == EVENTS_MAX_RECEIVES, queue


def test_every_alarm_notifies_the_alarm_topic():
    assert RESOURCES["AlarmTopic"]["Type"] == "AWS::SNS::Topic"
    for logical, props in ALARMS.items():
        assert {"Ref": "AlarmTopic"} in props.get("AlarmActions", []), logical
        assert props.get("TreatMissingData") == "notBreaching", logical


def test_alarm_email_is_optional():
    assert TEMPLATE["Parameters"]["AlarmEmail"]["Default"] == ""
    assert TEMPLATE["Conditions"]["HasAlarmEmail"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmEmail"}, ""]}]}
    subscriptions = {k: v for k, v in RESOURCES.items() if v["Type"] == "AWS::SNS::Subscription"}
    assert subscriptions, "no email subscription"
    for resource in subscriptions.values():
        assert resource["Condition"] == "HasAlarmEmail"
        assert resource["Properties"]["Endpoint"] == {"Ref": "AlarmEmail"}


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_every_function_logs_to_a_log_group_with_retention(function):
    log_group = ref((FUNCTIONS[function].get("LoggingConfig") or {}).get("LogGroup"))
    if log_group is None:  # the other accepted form: a group named /aws/lambda/<function name>
        groups = [
            props for props in of_type("AWS::Logs::LogGroup").values()
            if props.get("LogGroupName") == {"Fn::Sub": f"/aws/lambda/${{{function}}}"}
        ]
        assert groups, f"{function}: no log group"
        props = groups[0]
    else:
        assert RESOURCES[log_group]["Type"] == "AWS::Logs::LogGroup"
        props = RESOURCES[log_group]["Properties"]
    assert props["RetentionInDays"] == {"Ref": "LogRetentionDays"}


def test_powertools_and_tracing_are_configured_for_every_function():
    env = GLOBAL_FUNCTION["Environment"]["Variables"]
    assert env["POWERTOOLS_SERVICE_NAME"] == "usage-ledger"
    assert env["POWERTOOLS_METRICS_NAMESPACE"]
    assert env["POWERTOOLS_LOGGER_LOG_EVENT"] == "false"  # events carry emails and JWT claims
    assert GLOBAL_FUNCTION["Tracing"] == "Active"
    for function, props in FUNCTIONS.items():
        assert props.get("Tracing", "Active") == "Active", function


def test_throttling_and_concurrency_limits_stay():
    settings = HTTP_API["DefaultRouteSettings"]
    parameters = TEMPLATE["Parameters"]
    assert settings == {"ThrottlingBurstLimit": {"Ref": "ApiThrottlingBurstLimit"},
                        "ThrottlingRateLimit": {"Ref": "ApiThrottlingRateLimit"}}
    for name in ("ApiThrottlingBurstLimit", "ApiThrottlingRateLimit"):
        assert parameters[name]["Default"] >= 1000, f"{name}: production-sized default"
    for function in ("IngestFunction", "CloseBillingCyclesWorkerFunction", "EvaluateAlertsWorkerFunction"):
        for props in events(function, "SQS").values():
            concurrency = props["ScalingConfig"]["MaximumConcurrency"]
            batch = props["BatchSize"]
            if isinstance(concurrency, dict):  # a template parameter
                assert parameters[concurrency["Ref"]]["MinValue"] >= 2
                assert parameters[concurrency["Ref"]]["MaxValue"] <= 1000
            if isinstance(batch, dict):
                assert 1 <= parameters[batch["Ref"]]["Default"] <= parameters[batch["Ref"]]["MaxValue"] <= 10
    assert TEMPLATE["Parameters"]["IngestMaximumConcurrency"]["Default"] >= 100


# ------------------------------------------------------------------------- 5. contract shape


def test_parameters_have_working_defaults():
    parameters = TEMPLATE["Parameters"]
    assert parameters["SenderEmail"]["Default"] == "billing@example.com"
    assert str(parameters["BillingGraceMinutes"]["Default"]) == "60"
    for name, spec in parameters.items():
        assert "Default" in spec, f"{name} has no default"


# the functions that render invoice PDFs (invoices and receipts by email, GET .../invoices/{id} as PDF)
PDF_FUNCTIONS = {"TeamApiFunction", "CloseBillingCyclesWorkerFunction", "StripeWebhooksFunction",
                 "OperatorApiFunction"}


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_every_function_runs_python312_with_the_layers_it_needs_built_by_the_makefile(function):
    props = FUNCTIONS[function]
    assert props.get("Runtime", GLOBAL_FUNCTION.get("Runtime")) == "python3.12"
    assert "Layers" not in GLOBAL_FUNCTION  # each function names its own (SAM cannot take a Globals one away)
    layers = props.get("Layers", [])
    if function == "WebPageFunction":  # its code is the page, and its handler module copied beside it
        assert layers == []
        assert props["CodeUri"] == "web/" and props["Handler"].startswith("usage_ledger.")
        assert (ROOT / "shared" / (props["Handler"].rsplit(".", 1)[0].replace(".", "/") + ".py")).is_file()
    else:
        assert props["CodeUri"].startswith("functions/") and props["Handler"]
        expected = [{"Ref": "DomainLayer"}] + ([{"Ref": "PdfLayer"}] if function in PDF_FUNCTIONS else [])
        assert layers == expected  # PdfLayer after DomainLayer: its font folder joins usage_ledger in /opt
    # packaging/Makefile's recipes: bytecode compiled in, nothing the runtime provides
    assert RESOURCES[function]["Metadata"] == {"BuildMethod": "makefile", "ContextPath": "packaging"}
    assert (ROOT / "packaging" / "Makefile").is_file()


def test_the_page_signs_in_against_the_authorizers_issuer_and_audience():
    env = FUNCTIONS["WebPageFunction"]["Environment"]["Variables"]
    assert env["JWT_ISSUER"] == {"Ref": "JwtIssuer"} and env["JWT_AUDIENCE"] == {"Ref": "JwtAudience"}
    assert "X-Local-User" not in json.dumps(TEMPLATE) and "LOCAL_USER" not in json.dumps(TEMPLATE)
    assert "PageUrl" in TEMPLATE["Outputs"]


RUNTIME_PROVIDED = {"boto3", "botocore", "s3transfer", "jmespath", "python-dateutil"}


def _requirements(name: str) -> dict[str, str]:
    lines = [line.split("#")[0].strip() for line in (ROOT / "shared" / name).read_text().splitlines()]
    assert all("==" in line for line in lines if line), name
    return {line.split("==")[0].split("[")[0].lower().replace("_", "-"): line for line in lines if line}


def test_the_layers_are_built_from_shared_with_pinned_requirements_and_nothing_the_runtime_has():
    for layer in ("DomainLayer", "PdfLayer"):
        resource = RESOURCES[layer]
        assert resource["Type"] == "AWS::Serverless::LayerVersion"
        assert resource["Properties"]["ContentUri"] == "shared/"
        assert resource["Metadata"] == {"BuildMethod": "makefile", "ContextPath": "packaging"}
    core, pdf = _requirements("requirements.txt"), _requirements("requirements-pdf.txt")
    assert {"aws-lambda-powertools", "jinja2", "tzdata", "pynamodb", "stripe"} <= set(core)
    assert {"fpdf2", "fonttools", "pillow"} <= set(pdf) and not set(pdf) & set(core)
    assert not RUNTIME_PROVIDED & (set(core) | set(pdf))
    assert "tracer" not in core["aws-lambda-powertools"]  # no aws-xray-sdk: nothing uses Powertools' Tracer


def test_nothing_imports_the_tracer_the_layer_does_not_ship():
    sources = [*(ROOT / "shared").rglob("*.py"), *(ROOT / "functions").rglob("*.py")]
    assert not [str(path) for path in sources if re.search(r"\bTracer\b|aws_xray_sdk|\.tracing\b", path.read_text())]


def test_ingest_reports_batch_item_failures():
    sources = events("IngestFunction", "SQS")
    # the FIFO queue, and the standard queue of earlier releases until it is empty
    assert {ref(props["Queue"]) for props in sources.values()} == {"EventsFifoQueue", "EventsQueue"}
    timeout = FUNCTIONS["IngestFunction"].get("Timeout", GLOBAL_FUNCTION["Timeout"])
    for props in sources.values():
        assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        queue = RESOURCES[ref(props["Queue"])]["Properties"]
        assert queue["VisibilityTimeout"] >= 6 * timeout


def test_the_events_queue_is_fifo_with_a_fifo_dead_letter_queue():
    queue = RESOURCES["EventsFifoQueue"]["Properties"]
    assert queue["FifoQueue"] is True and queue["FifoThroughputLimit"] == "perMessageGroupId"
    dead_letters = queue["RedrivePolicy"]["deadLetterTargetArn"]["Fn::GetAtt"][0]
    assert RESOURCES[dead_letters]["Properties"]["FifoQueue"] is True
    assert GLOBAL_FUNCTION["Environment"]["Variables"]["EVENTS_QUEUE_URL"] == {"Ref": "EventsFifoQueue"}
    # the standard queue of earlier releases stays standard (drained, not replaced) until it is removed
    assert "FifoQueue" not in RESOURCES["EventsQueue"]["Properties"]
    assert "FifoQueue" not in RESOURCES["EventsDeadLetterQueue"]["Properties"]


@pytest.mark.parametrize("scheduled, worker, queue", [
    ("CloseBillingCyclesFunction", "CloseBillingCyclesWorkerFunction", "BillingWorkQueue"),
    ("EvaluateAlertsFunction", "EvaluateAlertsWorkerFunction", "AlertsWorkQueue"),
])
def test_each_scheduled_job_fans_out_to_a_worker_through_a_queue_with_a_dead_letter_queue(scheduled, worker, queue):
    variables = FUNCTIONS[scheduled]["Environment"]["Variables"]
    assert {"Ref": queue} in variables.values()
    (props,) = events(worker, "SQS").values()
    assert ref(props["Queue"]) == queue and props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    properties = RESOURCES[queue]["Properties"]
    assert properties["VisibilityTimeout"] >= 6 * FUNCTIONS[worker]["Timeout"]
    assert properties["RedrivePolicy"]["maxReceiveCount"] >= 1


@pytest.mark.parametrize("function", ["CloseBillingCyclesFunction", "EvaluateAlertsFunction"])
def test_scheduled_functions_have_a_schedule(function):
    assert events(function, "Schedule") or events(function, "ScheduleV2")


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_every_function_serves_one_kind_of_trigger(function):
    kinds = {event["Type"] for event in (FUNCTIONS[function].get("Events") or {}).values()}
    assert len(kinds) == 1, f"{function} is triggered by {sorted(kinds)}: one handler per trigger"


def test_a_function_of_its_own_reacts_to_balance_changes_only():
    assert not events("EvaluateAlertsFunction", "DynamoDB")
    (props,) = events("BalanceChangedAlertsFunction", "DynamoDB").values()
    assert props["Stream"] == {"Fn::GetAtt": ["LedgerTable", "StreamArn"]}
    patterns = [json.loads(item["Pattern"]) for item in props["FilterCriteria"]["Filters"]]
    assert patterns == [{"dynamodb": {"Keys": {"SK": {"S": [{"prefix": "RES#"}]}}}}]
    assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert ref(props["DestinationConfig"]["OnFailure"]["Destination"]) == "AlertsStreamDeadLetterQueue"


@pytest.mark.parametrize("function", sorted(f for f in FUNCTIONS if events(f, "DynamoDB") or events(f, "Kinesis")))
def test_every_stream_function_alarms_when_it_falls_behind(function):
    assert alarms_on("IteratorAge", function), f"{function}: no IteratorAge alarm"


# ------------------------------------------------------------------------- 6. expansion

# The logical ids the template had before its repetition was folded into Fn::ForEach loops: folding
# must not rename any (CloudFormation would replace the resource), only the listed additions are new.
LOGICAL_IDS_BEFORE_FOLDING = [
    "LedgerTable", "UsageTable", "DedupeTable", "EventsQueue", "EventsDeadLetterQueue",
    "AlertsStreamDeadLetterQueue", "ScheduledRunsDeadLetterQueue", "ScheduledRunsDeadLetterQueuePolicy",
    "DomainLayer", "HttpApiAccessLogGroup", "HttpApi",
    "OperatorApiFunctionLogGroup", "OperatorApiFunction", "ProducerApiFunctionLogGroup", "ProducerApiFunction",
    "TeamApiFunctionLogGroup", "TeamApiFunction", "IngestFunctionLogGroup", "IngestFunction",
    "CloseBillingCyclesFunctionLogGroup", "CloseBillingCyclesFunction",
    "EvaluateAlertsFunctionLogGroup", "EvaluateAlertsFunction",
    "AlarmTopic", "AlarmEmailSubscription",
    "EventsDeadLetterQueueAlarm", "AlertsStreamDeadLetterQueueAlarm", "ScheduledRunsDeadLetterQueueAlarm",
    "EventsQueueAgeAlarm", "AlertsStreamIteratorAgeAlarm",
    "OperatorApiFunctionErrorsAlarm", "OperatorApiFunctionThrottlesAlarm",
    "ProducerApiFunctionErrorsAlarm", "ProducerApiFunctionThrottlesAlarm",
    "TeamApiFunctionErrorsAlarm", "TeamApiFunctionThrottlesAlarm",
    "IngestFunctionErrorsAlarm", "IngestFunctionThrottlesAlarm",
    "CloseBillingCyclesFunctionErrorsAlarm", "CloseBillingCyclesFunctionThrottlesAlarm",
    "EvaluateAlertsFunctionErrorsAlarm", "EvaluateAlertsFunctionThrottlesAlarm",
    "HttpApi5xxAlarm", "LedgerTableThrottleAlarm", "UsageTableThrottleAlarm", "DedupeTableThrottleAlarm",
]
ADDED_SINCE = {
    # Stripe's events (contract section 6), with its log group and alarms
    "StripeWebhooksFunction": "AWS::Serverless::Function",
    "StripeWebhooksFunctionLogGroup": "AWS::Logs::LogGroup",
    "StripeWebhooksFunctionErrorsAlarm": "AWS::CloudWatch::Alarm",
    "StripeWebhooksFunctionThrottlesAlarm": "AWS::CloudWatch::Alarm",
    # the stream entry point of the alert evaluator, as a function of its own (one handler per trigger)
    "BalanceChangedAlertsFunction": "AWS::Serverless::Function",
    "BalanceChangedAlertsFunctionLogGroup": "AWS::Logs::LogGroup",
    "BalanceChangedAlertsFunctionErrorsAlarm": "AWS::CloudWatch::Alarm",
    "BalanceChangedAlertsFunctionThrottlesAlarm": "AWS::CloudWatch::Alarm",
    # the SES send statement, once, instead of inline in every emailing function
    "SendAsSenderEmailPolicy": "AWS::IAM::ManagedPolicy",
    # execute-api:Invoke on the operator routes, and on the producer routes, for the callers' roles
    "OperatorInvokePolicy": "AWS::IAM::ManagedPolicy",
    "ProducerInvokePolicy": "AWS::IAM::ManagedPolicy",
    # ingest set events aside (data it could not store): someone must look, and can replay them
    "EventsSetAsideAlarm": "AWS::CloudWatch::Alarm",
    # the page on the HTTP API (GET / and /web/{proxy+}), with the sign-in configuration
    "WebPageFunction": "AWS::Serverless::Function",
    "WebPageFunctionLogGroup": "AWS::Logs::LogGroup",
    "WebPageFunctionErrorsAlarm": "AWS::CloudWatch::Alarm",
    "WebPageFunctionThrottlesAlarm": "AWS::CloudWatch::Alarm",
    # issue 18: the FIFO events queue (one writer per team and resource), and the scheduled jobs
    # fanned out to workers through work queues
    "EventsFifoQueue": "AWS::SQS::Queue",
    "EventsFifoDeadLetterQueue": "AWS::SQS::Queue",
    "EventsFifoDeadLetterQueueAlarm": "AWS::CloudWatch::Alarm",
    **{f"{work}{suffix}": type_ for work in ("BillingWork", "AlertsWork") for suffix, type_ in (
        ("Queue", "AWS::SQS::Queue"), ("DeadLetterQueue", "AWS::SQS::Queue"),
        ("DeadLetterQueueAlarm", "AWS::CloudWatch::Alarm"))},
    **{f"{worker}{suffix}": type_ for worker in ("CloseBillingCyclesWorkerFunction", "EvaluateAlertsWorkerFunction")
       for suffix, type_ in (("", "AWS::Serverless::Function"), ("LogGroup", "AWS::Logs::LogGroup"),
                             ("ErrorsAlarm", "AWS::CloudWatch::Alarm"), ("ThrottlesAlarm", "AWS::CloudWatch::Alarm"))},
    # issue 29: the PDF stack in a layer of its own, for the functions that render PDFs; the alarm
    # topic encrypted with a key CloudWatch may use
    "PdfLayer": "AWS::Serverless::LayerVersion",
    "AlarmTopicKey": "AWS::KMS::Key",
}


def test_the_expanded_template_keeps_every_logical_id():
    assert set(RESOURCES) == set(LOGICAL_IDS_BEFORE_FOLDING) | set(ADDED_SINCE)
    assert len(LOGICAL_IDS_BEFORE_FOLDING) == len(set(LOGICAL_IDS_BEFORE_FOLDING))
    for logical, type_ in ADDED_SINCE.items():
        assert RESOURCES[logical]["Type"] == type_, logical


def test_the_repetition_stays_folded_into_loops():
    raw = load_raw_template()
    assert raw["Transform"] == ["AWS::LanguageExtensions", "AWS::Serverless-2016-10-31"]
    loops = {key.removeprefix("Fn::ForEach::") for key in raw["Resources"] if key.startswith("Fn::ForEach::")}
    assert {"FunctionLogsAndAlarms", "DeadLetterQueueAlarms", "TableThrottleAlarms"} <= loops
    assert not [key for key in raw["Resources"] if key.endswith(("LogGroup", "ErrorsAlarm", "ThrottlesAlarm"))
                and key != "HttpApiAccessLogGroup"], "a function's log group or alarm written out by hand"


def test_the_expander_unrolls_loops_as_language_extensions_does():
    raw = {
        "Mappings": {"Say": {"A": {"Text": "alpha"}, "B": {"Text": "beta"}}},
        "Resources": {
            "Kept": {"Type": "T", "Properties": {"Name": "${NotALoopVariable}"}},
            "Fn::ForEach::Outer": ["X", ["A", "B"], {
                "Thing${X}": {"Type": "T", "Properties": {
                    "Item": {"Ref": "X"},
                    "Other": {"Fn::Sub": "${Kept${X}}"},
                    "Arn": {"Fn::GetAtt": [{"Fn::Sub": "Thing${X}"}, "Arn"]},
                    "Plain": {"Fn::Sub": "prefix-${X}"},
                    "Stack": {"Fn::Sub": "${AWS::StackName}-${X}"},
                    "Said": {"Fn::FindInMap": ["Say", {"Ref": "X"}, "Text"]},
                    "Param": {"Ref": "SomeParameter"},
                }},
                "Fn::ForEach::Inner": ["Y", ["1", "a-b"], {"Thing${X}&{Y}": {"Type": "U"}}],
            }],
        },
    }
    resources = expand(raw)["Resources"]
    assert list(resources) == ["Kept", "ThingA", "ThingA1", "ThingAab", "ThingB", "ThingB1", "ThingBab"]
    assert resources["Kept"] == raw["Resources"]["Kept"]
    assert resources["ThingB"]["Properties"] == {
        "Item": "B", "Other": {"Ref": "KeptB"}, "Arn": {"Fn::GetAtt": ["ThingB", "Arn"]}, "Plain": "prefix-B",
        "Stack": {"Fn::Sub": "${AWS::StackName}-B"}, "Said": "beta", "Param": {"Ref": "SomeParameter"},
    }
    with pytest.raises(ValueError, match="defined twice"):
        expand({"Resources": {"ThingA": {}, "Fn::ForEach::L": ["X", ["A"], {"Thing${X}": {}}]}})
    with pytest.raises(ValueError, match="checkov cannot read"):  # write !Sub "${${X}}" instead
        expand({"Resources": {"Fn::ForEach::L": [
            "X", ["A"], {"T${X}": {"Properties": {"N": {"Ref": {"Fn::Sub": "${X}"}}}}}]}})
    with pytest.raises(ValueError, match="outside a key or !Sub"):  # CloudFormation would leave it as written
        expand({"Resources": {"Fn::ForEach::L": ["X", ["A"], {"Thing${X}": {"Properties": {"Name": "${X}"}}}]}})


# ------------------------------------------------------------------------- lint and local deploy


def test_cfn_lint_reports_nothing():
    result = subprocess.run(
        # the cfn-lint console script's entry point, run by this interpreter (cfnlint has no __main__)
        [sys.executable, "-c", "import sys; from cfnlint.runner import main; sys.exit(main())", str(TEMPLATE_PATH)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0 and result.stdout.strip() == "", result.stdout + result.stderr


def test_the_moto_runner_creates_every_queue_and_table(monkeypatch):
    from moto import mock_aws

    from infra.stack import deploy

    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        stack = deploy(prefix="template-test")
    assert set(stack.physical) >= QUEUES | TABLES


def test_samconfig_deploys_with_the_needed_capabilities():
    import tomllib

    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    deploy = config["default"]["deploy"]["parameters"]
    assert set(deploy["capabilities"].split()) == {"CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"}
    assert deploy["resolve_s3"] is True and deploy["confirm_changeset"] is True
    assert config["default"]["global"]["parameters"]["stack_name"] == "usage-ledger"

