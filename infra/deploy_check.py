"""The deploy check (`make deploy-check`, run by CI): what `sam build` made imports in Lambda's shape.

    .venv/bin/python -m infra.deploy_check --build .aws-sam/host

For a `sam build` output directory (built for this machine's architecture, so its compiled wheels
load here: `make build-host`), fails unless
- no layer ships what the python3.12 runtime provides (boto3, botocore, s3transfer, jmespath,
  dateutil): a copy would shadow the runtime's and be imported instead of it;
- WebPageFunction has no layer, and every function's layers were built;
- every function's `Handler` imports, and its composition-root parts compose, in a Lambda-like
  interpreter (Python 3.12 with boto3 only, the function's folder then its layers' python/ merged
  as Lambda merges them into /opt, PYTHONDONTWRITEBYTECODE=1), with botocore from the runtime and
  no module of the build compiled from source (the build ships bytecode, packaging/Makefile).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from bench import imports
from infra.template import ROOT, load_template

RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil")
NO_LAYER = {"WebPageFunction"}  # the page: standard library only


def layer_problems(build: Path, resources: dict[str, Any]) -> list[str]:
    problems = []
    for logical, resource in resources.items():
        if resource["Type"] != "AWS::Serverless::LayerVersion":
            continue
        python = build / resource["Properties"]["ContentUri"] / "python"
        for root in (python, python / "lib" / "python3.12" / "site-packages"):
            for name in RUNTIME_PROVIDED:
                if (root / name).exists() or (root / f"{name}.py").exists():
                    problems.append(f"{logical}: ships {name} ({(root / name).relative_to(build)}), the runtime's own")
    for logical, resource in resources.items():
        if resource["Type"] != "AWS::Serverless::Function":
            continue
        layers = [layer["Ref"] for layer in resource["Properties"].get("Layers", [])]
        if logical in NO_LAYER and layers:
            problems.append(f"{logical}: has layers {layers}; it needs none")
        problems += [f"{logical}: layer {layer} was not built" for layer in layers if not (build / layer).is_dir()]
    return problems


def handler_problems(logical: str, spec: dict[str, Any]) -> list[str]:
    try:
        sample = imports.check(spec)
    except (RuntimeError, imports.subprocess.TimeoutExpired) as error:
        return [f"{logical}: {spec['module']}.{spec['attribute']} does not import: {error}"]
    problems = [f"{logical}: compiled from source at import (no bytecode shipped): {path}"
                for path in imports.shipped(spec, sample["compiled"])]
    if sample["botocore"] and imports.shipped(spec, [sample["botocore"]]):
        problems.append(f"{logical}: botocore imported from the build ({sample['botocore']}), not the runtime")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--build", type=Path, default=ROOT / ".aws-sam" / "host", metavar="DIR")
    build = parser.parse_args().build.resolve()
    if not (build / "template.yaml").is_file():
        print(f"deploy check: no build in {build} (make build-host)", file=sys.stderr)
        return 2
    resources = load_template(build / "template.yaml")["Resources"]
    problems = layer_problems(build, resources)
    specs = imports.handlers(build=build)
    for logical, spec in specs.items():
        found = handler_problems(logical, spec)
        layers = "+".join(layer["Ref"] for layer in resources[logical]["Properties"].get("Layers", [])) or "no layer"
        print(f"{'FAIL' if found else 'ok  '} {logical:<34} {spec['module']}.{spec['attribute']} ({layers})")
        problems += found
    for problem in problems:
        print(f"deploy check: {problem}", file=sys.stderr)
    print(f"deploy check: {len(specs)} handlers from {build}: " + (f"{len(problems)} problems" if problems else "ok"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
