"""Deploys template.yaml's tables, queues and parameters into moto (in-process or server mode).

The template is the single source of truth: tests and the local runner both call `deploy()`,
so no table schema or queue name is written down twice.
"""
from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from typing import Any

import boto3

# the template as CloudFormation expands it (Fn::ForEach loops unrolled); importable from here too
from infra.template import ROOT, TEMPLATE_PATH, load_template

__all__ = ["ROOT", "TEMPLATE_PATH", "Stack", "default_parameters", "deploy", "load_template"]


@dataclass
class Stack:
    """What `deploy()` created: physical names per logical id, and resolved function env."""

    template: dict[str, Any]
    parameters: dict[str, str]
    physical: dict[str, str] = field(default_factory=dict)
    attributes: dict[tuple[str, str], str] = field(default_factory=dict)

    def resolve(self, value: Any) -> Any:
        if isinstance(value, dict):
            if "Ref" in value:
                name = value["Ref"]
                if name in self.parameters:
                    return self.parameters[name]
                return self.physical[name]
            if "Fn::GetAtt" in value:
                logical, attribute = value["Fn::GetAtt"]
                return self.attributes[(logical, attribute)]
            if "Fn::Sub" in value:
                return value["Fn::Sub"]
            return {key: self.resolve(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.resolve(item) for item in value]
        return value

    def function_environment(self, logical_id: str) -> dict[str, str]:
        resources = self.template["Resources"]
        env = dict(self.template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {}))
        own = resources[logical_id]["Properties"].get("Environment", {}).get("Variables", {})
        env.update(own)
        return {key: str(self.resolve(value)) for key, value in env.items()}

    def functions(self) -> dict[str, dict[str, Any]]:
        return {
            logical: resource["Properties"]
            for logical, resource in self.template["Resources"].items()
            if resource["Type"] == "AWS::Serverless::Function"
        }

    def http_routes(self) -> list[tuple[str, str, str, str]]:
        """(method, path, function logical id, authorizer) for every HttpApi event."""
        routes = []
        for logical, props in self.functions().items():
            for event in props.get("Events", {}).values():
                if event["Type"] != "HttpApi":
                    continue
                auth = (event["Properties"].get("Auth") or {}).get("Authorizer", "JWT")
                routes.append((event["Properties"]["Method"], event["Properties"]["Path"], logical, auth))
        return routes


def default_parameters(template: dict[str, Any]) -> dict[str, str]:
    return {name: str(spec.get("Default", "")) for name, spec in template.get("Parameters", {}).items()}


def deploy(
    session: boto3.session.Session | None = None,
    *,
    prefix: str = "usage-ledger",
    parameters: dict[str, str] | None = None,
    endpoint_url: str | None = None,
) -> Stack:
    """Create every table and queue of the template (idempotent) and verify the SES sender."""
    session = session or boto3.session.Session()
    template = load_template()
    params = default_parameters(template)
    params.update(parameters or {})
    params.setdefault("AWS::Region", session.region_name or "us-east-1")
    stack = Stack(template=template, parameters=params)
    dynamodb = session.client("dynamodb", endpoint_url=endpoint_url)
    sqs = session.client("sqs", endpoint_url=endpoint_url)
    ses = session.client("ses", endpoint_url=endpoint_url)
    resources = template["Resources"]

    # queues first, dead-letter queues before the queues that point at them
    queues = [logical for logical, res in resources.items() if res["Type"] == "AWS::SQS::Queue"]
    queues.sort(key=lambda logical: "RedrivePolicy" in resources[logical].get("Properties", {}))
    for logical in queues:
        props = resources[logical].get("Properties", {})
        attributes = {}
        if "VisibilityTimeout" in props:
            attributes["VisibilityTimeout"] = str(props["VisibilityTimeout"])
        if "MessageRetentionPeriod" in props:
            attributes["MessageRetentionPeriod"] = str(props["MessageRetentionPeriod"])
        if "RedrivePolicy" in props:
            redrive = stack.resolve(props["RedrivePolicy"])
            attributes["RedrivePolicy"] = json.dumps(redrive)
        name = f"{prefix}-{logical}"
        if props.get("FifoQueue"):  # a FIFO queue's name ends in .fifo (CloudFormation names it so too)
            name += ".fifo"
            attributes["FifoQueue"] = "true"
            for key in ("ContentBasedDeduplication", "DeduplicationScope", "FifoThroughputLimit"):
                if key in props:
                    attributes[key] = str(props[key]).lower() if isinstance(props[key], bool) else str(props[key])
        url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        stack.physical[logical] = url
        stack.attributes[(logical, "Arn")] = arn
        stack.attributes[(logical, "QueueName")] = name

    existing = set(dynamodb.list_tables()["TableNames"])
    for logical, res in resources.items():
        if res["Type"] != "AWS::DynamoDB::Table":
            continue
        props = res["Properties"]
        name = f"{prefix}-{logical}"
        stack.physical[logical] = name
        if name not in existing:
            kwargs: dict[str, Any] = {
                "TableName": name,
                "AttributeDefinitions": props["AttributeDefinitions"],
                "KeySchema": props["KeySchema"],
                "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
            }
            if props.get("GlobalSecondaryIndexes"):
                kwargs["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
            if props.get("StreamSpecification"):
                kwargs["StreamSpecification"] = {"StreamEnabled": True, **props["StreamSpecification"]}
            dynamodb.create_table(**kwargs)
            ttl = props.get("TimeToLiveSpecification")
            if ttl:
                dynamodb.update_time_to_live(TableName=name, TimeToLiveSpecification=ttl)
        description = dynamodb.describe_table(TableName=name)["Table"]
        stack.attributes[(logical, "Arn")] = description["TableArn"]
        if description.get("LatestStreamArn"):
            stack.attributes[(logical, "StreamArn")] = description["LatestStreamArn"]

    for logical, res in resources.items():
        if res["Type"] in {"AWS::Serverless::LayerVersion", "AWS::Serverless::HttpApi"}:
            stack.physical[logical] = f"{prefix}-{logical}"
        if res["Type"] == "AWS::Serverless::Function":
            stack.physical[logical] = f"{prefix}-{logical}"

    ses.verify_email_identity(EmailAddress=params["SenderEmail"])
    from infra.localstripe import LOCAL_SECRET_KEY, LOCAL_WEBHOOK_SECRET

    _put_secret(session, params["StripeSecretName"], LOCAL_SECRET_KEY)
    _put_secret(session, params["StripeWebhookSecretName"], LOCAL_WEBHOOK_SECRET)
    return stack


def _put_secret(session: boto3.session.Session, name: str, value: str) -> None:
    """What an operator does once per account (the template reads the secrets, never creates them)."""
    secrets = session.client("secretsmanager")
    with contextlib.suppress(secrets.exceptions.ResourceExistsException):
        secrets.create_secret(Name=name, SecretString=value)
