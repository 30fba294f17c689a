"""checkov on the template (`make deploy-check`, run by CI): it must read it, and report nothing new.

    .venv/bin/python -m infra.checkov_check [--checkov .venv-tools/checkov/bin/checkov]

Runs `checkov --framework cloudformation` twice: on template.yaml as written (it must parse it:
no parsing errors), and on the template with its Fn::ForEach loops expanded (infra.template, what
CloudFormation deploys; checkov does not expand loops, so as written it never sees the log groups,
work queues and alarms they make). Every failed check of the expanded template must be explained
in docs/deploy.md's "What checkov reports" table, whose rows name the check and its resources
(backticked logical ids, or "every function", "every queue", "every log group", "every table").
An explained finding that no longer fails is reported, so its row can go.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from infra.template import ROOT, TEMPLATE_PATH, load_template

DOC = ROOT / "docs" / "deploy.md"
SECTION = "### What checkov reports"
EVERY = {"every function": "AWS::Serverless::Function", "every queue": "AWS::SQS::Queue",
         "every log group": "AWS::Logs::LogGroup", "every table": "AWS::DynamoDB::Table"}


def scan(checkov: str, path: Path) -> dict[str, Any]:
    done = subprocess.run([checkov, "-f", str(path), "--framework", "cloudformation", "--quiet", "--compact",
                           "--skip-download", "-o", "json"], capture_output=True, text=True,
                          env={**os.environ, "BC_SKIP_MAPPING": "TRUE"}, timeout=600)
    try:
        report = json.loads(done.stdout)
    except json.JSONDecodeError:
        raise SystemExit(
            f"checkov on {path}: no report (exit {done.returncode}): {done.stderr.strip()[-2000:]}") from None
    report = report[0] if isinstance(report, list) else report
    if "summary" not in report:  # a run with no resources read reports only a summary dict
        report = {"summary": report, "results": {"failed_checks": []}}
    return report


def explained() -> dict[str, set[str] | str]:
    """check id -> the logical ids its row names, or the resource type of an "every ..." row."""
    text = DOC.read_text()
    if SECTION not in text:
        raise SystemExit(f"{DOC}: no '{SECTION}' section")
    rows: dict[str, set[str] | str] = {}
    for line in text.split(SECTION, 1)[1].split("\n### ", 1)[0].splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        check = re.search(r"CKV2?_AWS_\d+", cells[0]) if len(cells) >= 3 else None
        if check:
            every = next((kind for phrase, kind in EVERY.items() if phrase in cells[1]), None)
            rows[check.group()] = every or set(re.findall(r"`(\w+)`", cells[1]))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkov", default=str(ROOT / ".venv-tools" / "checkov" / "bin" / "checkov"))
    checkov = parser.parse_args().checkov
    problems = []
    as_written = scan(checkov, TEMPLATE_PATH)["summary"]
    if as_written.get("parsing_errors") or not as_written.get("resource_count"):
        problems.append(f"checkov cannot read template.yaml: {as_written}")
    template = load_template()
    expanded_path = ROOT / ".aws-sam" / "expanded-template.json"
    expanded_path.parent.mkdir(exist_ok=True)
    expanded_path.write_text(json.dumps(template, indent=1))
    report = scan(checkov, expanded_path)
    types = {logical: resource["Type"] for logical, resource in template["Resources"].items()}
    rows = explained()
    failed: set[tuple[str, str]] = set()
    for finding in report["results"]["failed_checks"]:
        check, logical = finding["check_id"], finding["resource"].rsplit(".", 1)[-1]
        failed.add((check, logical))
        row = rows.get(check)
        if not (row == types.get(logical) or isinstance(row, set) and logical in row):
            problems.append(f"{check} ({finding['check_name']}) fails for {logical}, and docs/deploy.md does not "
                            "say why: fix it, or explain it in the table")
    for check, row in rows.items():
        if isinstance(row, set):
            for logical in sorted(row - {name for found, name in failed if found == check}):
                print(f"checkov: {check} passes for {logical} now; its docs/deploy.md row can go")
    summary = report["summary"]
    if not problems:
        print(f"checkov: template.yaml read ({as_written.get('resource_count')} resources as written, "
              f"{summary.get('resource_count')} expanded): {summary.get('passed')} passed, {summary.get('failed')} "
              "failed, every failure explained in docs/deploy.md")
    for problem in problems:
        print(f"checkov: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
