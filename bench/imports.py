"""Each handler's import time against `import boto3`, measured in alternation in one run.

For every function of template.yaml: fresh interpreters, `import boto3` (A) and the handler
imported as Lambda would (B), interleaved A, B, A, B ... for N rounds after one discarded warm-up
pair (page cache). Each child times its own import with time.perf_counter, so interpreter start-up
is excluded; the parent also times the whole child process. Reported per function: the median of
each and median(handler) / median(boto3), for the import alone and for the import plus the
composition root's parts the function asks for (its first invocation's set-up).

Two places to import from:
- `--build DIR` (what `make bench` reports): the output of `sam build` for this machine's
  architecture (`make build-host`), in a Lambda-like interpreter: Python 3.12 with boto3 only
  (.venv-tools/lambda), the function's folder then its layers' python/ (merged in order, as Lambda
  extracts them into /opt) on sys.path, PYTHONDONTWRITEBYTECODE=1 (Lambda cannot write any): only
  the bytecode the build shipped is used;
- without it, the repository in this interpreter (function folder + shared/, whose bytecode the
  dev venv has cached): how the code itself costs, without packaging.

    .venv/bin/python -m bench.imports [--build .aws-sam/host] [--rounds 7] [--chains 10] [--no-write]

writes the figures under "imports_built" (with --build) or "imports" in bench/results.json (bench.run
calls `run()` too). `--chains N` also prints, per handler, the N library imports that cost most beyond
`import boto3` (from `-X importtime`), each with the chain of imports that brought it in.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from infra.stack import Stack, default_parameters, load_template  # noqa: E402

ROUNDS = 7
REGION = "us-east-1"
# The child (argv[1] a JSON spec): time one import, in-process; report ms, how many modules it loaded
# and whether boto3 is among them (a handler that defers boto3 moves its cost to the first invocation,
# not away). __import__ is the import statement's own machinery, so -X importtime reports the handler
# module too. Then, timed apart, the parts of the composition root the function's code asks for
# (`container().<part>`): what its first invocation builds before any request, boto3 included.
# Every module compiled from source meanwhile is recorded (SourceLoader.source_to_code runs only when
# no usable bytecode was found), and where botocore came from.
CHILD = """
import json, sys, time
spec = json.loads(sys.argv[1])
import importlib._bootstrap_external as external
compiled, to_code = [], external.SourceLoader.source_to_code
def recording(self, data, path, *args, **kwargs):
    compiled.append(path)
    return to_code(self, data, path, *args, **kwargs)
external.SourceLoader.source_to_code = recording
sys.path[:0] = spec["path"]
before = len(sys.modules)
t, cpu = time.perf_counter(), time.process_time()
__import__(spec["module"])
if spec["attribute"]:
    getattr(sys.modules[spec["module"]], spec["attribute"])
ms, cpu_ms = (time.perf_counter() - t) * 1000, (time.process_time() - cpu) * 1000
loaded = len(sys.modules) - before
boto3 = "boto3" in sys.modules
t, cpu = time.perf_counter(), time.process_time()
if spec["parts"]:
    container = __import__("usage_ledger.bootstrap", fromlist=["container"]).container()
    for part in spec["parts"]:
        getattr(container, part)
compose_ms, compose_cpu_ms = (time.perf_counter() - t) * 1000, (time.process_time() - cpu) * 1000
botocore = getattr(sys.modules.get("botocore"), "__file__", None)
print(json.dumps({"import_ms": ms, "modules": loaded, "boto3": boto3, "compose_ms": compose_ms,
                  "import_cpu_ms": cpu_ms, "compose_cpu_ms": compose_cpu_ms, "compiled": compiled,
                  "botocore": botocore}))
"""
PART = re.compile(r"container\(\)\.(\w+)")


class _Placeholders(dict):
    """Physical ids and attributes of a stack that was never deployed (named as deploy() names them)."""

    def __init__(self, template: dict[str, Any]) -> None:
        super().__init__()
        self.resources = template.get("Resources", {})

    def __missing__(self, key: Any) -> str:
        if isinstance(key, tuple):  # (logical id, attribute) of a GetAtt
            return f"arn:aws:placeholder:{REGION}:123456789012:usage-ledger-{key[0]}"
        resource = self.resources.get(key)
        if isinstance(resource, dict) and resource.get("Type") == "AWS::SQS::Queue":  # Ref is its URL
            return f"https://sqs.{REGION}.amazonaws.com/123456789012/usage-ledger-{key}"
        return f"usage-ledger-{key}"


def handlers(template: dict[str, Any] | None = None, build: Path | None = None) -> dict[str, dict[str, Any]]:
    """logical id -> the module to import, its sys.path, interpreter and environment, for every
    template function: from the repository, or from a `sam build` output directory."""
    template = template or load_template()
    stack = Stack(template=template, parameters={**default_parameters(template), "AWS::Region": REGION},
                  physical=_Placeholders(template), attributes=_Placeholders(template))
    built = load_template(build / "template.yaml")["Resources"] if build else {}
    found = {}
    for logical, props in stack.functions().items():
        module, attribute = props["Handler"].rsplit(".", 1)
        folder = ROOT / props["CodeUri"]
        default_memory = template.get("Globals", {}).get("Function", {}).get("MemorySize", 128)
        memory = stack.resolve(props.get("MemorySize", default_memory))
        if build:
            task = build / built[logical]["Properties"]["CodeUri"]
            opt = merged_layers(build, [layer["Ref"] for layer in built[logical]["Properties"].get("Layers", [])])
            path = [str(task), str(opt / "python" / "lib" / "python3.12" / "site-packages"), str(opt / "python")]
            python, flags, cwd, extra = str(lambda_python()), ("-s",), str(task), {"PYTHONDONTWRITEBYTECODE": "1"}
        else:
            task, opt = folder, None
            path = [str(folder), str(ROOT / "shared")]
            # -I: no PYTHON* variables, no user site, no current directory on sys.path: only what is given
            python, flags, cwd, extra = sys.executable, ("-I",), None, {}
        env = {  # what the Lambda runtime sets that code could read, then the template's variables
            "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION, "AWS_LAMBDA_FUNCTION_NAME": f"usage-ledger-{logical}",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory), "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12", "LAMBDA_TASK_ROOT": str(task), "TZ": ":UTC",
            **extra, **stack.function_environment(logical),
        }
        parts = sorted({part for source in folder.glob("*.py") for part in PART.findall(source.read_text())})
        found[logical] = {"module": module, "attribute": attribute, "path": path, "env": env, "parts": parts,
                          "python": python, "flags": flags, "cwd": cwd, "task": str(task),
                          "opt": str(opt) if opt else None}
    return found


def lambda_python() -> Path:
    """The Lambda-like interpreter: Python 3.12 with boto3 only (`make tools`; LAMBDA_PYTHON overrides)."""
    return Path(os.environ.get("LAMBDA_PYTHON") or ROOT / ".venv-tools" / "lambda" / "bin" / "python3.12")


def merged_layers(build: Path, layers: list[str]) -> Path:
    """A function's /opt: its layers' build folders merged in order (Lambda extracts each into /opt,
    a later one adding files to the folders of the earlier ones), hard links in build/.opt/."""
    opt = build / ".opt" / ("+".join(layers) or "none")
    if not opt.is_dir():
        staging = opt.with_name(opt.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        for layer in layers:
            shutil.copytree(build / layer, staging, copy_function=os.link, dirs_exist_ok=True)
        staging.rename(opt)
    return opt


def _base_env() -> dict[str, str]:
    """Enough to run Python, and nothing of this shell's AWS, Powertools or PYTHON* settings."""
    return {key: os.environ[key] for key in ("PATH", "HOME", "LANG", "LC_ALL", "SYSTEMROOT") if key in os.environ}


def _child(spec: dict[str, Any], module: str | None = None, attribute: str | None = None,
           flags: tuple[str, ...] = (), parts: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    """Run CHILD as spec says (interpreter, sys.path, environment), importing `module`."""
    argument = json.dumps({"path": spec["path"], "module": module or spec["module"], "attribute": attribute,
                           "parts": list(parts)})
    return subprocess.run([spec.get("python", sys.executable), *spec.get("flags", ("-I",)), *flags, "-c", CHILD,
                           argument], capture_output=True, text=True, env={**_base_env(), **spec["env"]},
                          cwd=spec.get("cwd"), timeout=120)


def _sample(spec: dict[str, Any], module: str | None = None, attribute: str | None = None,
            parts: tuple[str, ...] = ()) -> dict[str, Any]:
    started = time.perf_counter()
    done = _child(spec, module, attribute, parts=parts)
    process_ms = (time.perf_counter() - started) * 1000
    if done.returncode != 0:
        raise RuntimeError((done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1])
    sample = json.loads(done.stdout.strip().splitlines()[-1])
    return {**sample, "process_ms": process_ms, "cold_ms": sample["import_ms"] + sample["compose_ms"],
            "cold_cpu_ms": sample["import_cpu_ms"] + sample["compose_cpu_ms"]}


def check(spec: dict[str, Any]) -> dict[str, Any]:
    """One import and composition of a built handler: what it loaded from where (infra/deploy_check.py)."""
    return _sample(spec, spec["module"], spec["attribute"], tuple(spec["parts"]))


def shipped(spec: dict[str, Any], paths: list[str]) -> list[str]:
    """The paths that are the build's own (the function's folder, its layers), not the interpreter's."""
    roots = tuple(root.rstrip("/") + "/" for root in (spec["task"], spec["opt"]) if root)
    return [path for path in paths if path.startswith(roots)]


def _median(samples: list[dict[str, float]], key: str) -> float:
    return round(statistics.median(sample[key] for sample in samples), 1)


def measure(logical: str, spec: dict[str, Any], rounds: int = ROUNDS) -> dict[str, Any]:
    boto3: list[dict[str, float]] = []
    handler: list[dict[str, float]] = []
    try:
        for index in range(rounds + 1):  # round 0 warms page caches (and the repository's bytecode); not kept
            a = _sample(spec, "boto3")
            b = _sample(spec, spec["module"], spec["attribute"], tuple(spec["parts"]))
            if index:
                boto3.append(a)
                handler.append(b)
    except (RuntimeError, subprocess.TimeoutExpired, ValueError) as error:
        return {"error": str(error)}
    result = {
        "boto3_import_ms_median": _median(boto3, "import_ms"),
        "handler_import_ms_median": _median(handler, "import_ms"),
        "boto3_process_ms_median": _median(boto3, "process_ms"),
        "handler_process_ms_median": _median(handler, "process_ms"),
        "boto3_modules": boto3[0]["modules"],
        "handler_modules": handler[0]["modules"],
        "handler_imports_boto3": handler[0]["boto3"],
        # modules of the build compiled at import (no usable bytecode shipped): a Lambda cold start pays each
        "handler_modules_compiled": len(shipped(spec, handler[0]["compiled"])) if spec["opt"] else None,
        "composed_parts": spec["parts"],
        "handler_compose_ms_median": _median(handler, "compose_ms"),
        "handler_cold_ms_median": _median(handler, "cold_ms"),
        "boto3_import_ms": [round(s["import_ms"], 1) for s in boto3],
        "handler_import_ms": [round(s["import_ms"], 1) for s in handler],
    }
    result["ratio"] = round(result["handler_import_ms_median"] / result["boto3_import_ms_median"], 2)
    result["process_ratio"] = round(result["handler_process_ms_median"] / result["boto3_process_ms_median"], 2)
    result["cold_ratio"] = round(result["handler_cold_ms_median"] / result["boto3_import_ms_median"], 2)
    # the same in CPU time (time.process_time): what a busy machine's waits for a core do not inflate
    result["boto3_import_cpu_ms_median"] = _median(boto3, "import_cpu_ms")
    result["handler_import_cpu_ms_median"] = _median(handler, "import_cpu_ms")
    result["handler_cold_cpu_ms_median"] = _median(handler, "cold_cpu_ms")
    result["cpu_ratio"] = round(result["handler_import_cpu_ms_median"] / result["boto3_import_cpu_ms_median"], 2)
    result["cold_cpu_ratio"] = round(result["handler_cold_cpu_ms_median"] / result["boto3_import_cpu_ms_median"], 2)
    return result


def run(rounds: int = ROUNDS, build: Path | None = None) -> dict[str, Any]:
    functions = {logical: measure(logical, spec, rounds) for logical, spec in handlers(build=build).items()}
    where = (f"the build output ({build.relative_to(ROOT) if build.is_relative_to(ROOT) else build}: function folder, "
             "then its layers' python/ merged as in /opt, on sys.path), in Python 3.12 with boto3 only and "
             "PYTHONDONTWRITEBYTECODE=1, so only the bytecode the build ships is used"
             if build else "the repository (function folder + shared/ on sys.path, its cached bytecode)")
    return {
        "how": (f"per function, {rounds} rounds of fresh interpreters alternating `import boto3` and the handler "
                f"from {where}, template environment, after one discarded warm-up "
                "pair; *_import_ms: time.perf_counter around the import inside the child (no interpreter "
                "start-up); *_process_ms: the whole child process; ratio = handler / boto3 import medians; "
                "handler_imports_boto3 false: boto3 comes with the first invocation instead; compose_ms: then "
                "building the composition root's parts the function's code asks for (container().<part>, no "
                "request made); cold_ratio = (import + compose) / boto3 import: the whole cold start's code; "
                "cpu_ratio, cold_cpu_ratio: the same in CPU time (time.process_time), which waits for a core "
                "on a busy machine do not inflate"),
        "python": (subprocess.run([str(lambda_python()), "-c", "import sys; print(sys.version.split()[0])"],
                                  capture_output=True, text=True).stdout.strip() if build else sys.version.split()[0]),
        "rounds": rounds,
        "functions": functions,
    }


def table(results: dict[str, Any]) -> str:
    rows = [f"{'function':<32} {'boto3 ms':>9} {'handler ms':>10} {'ratio':>6}   {'+compose ms':>11} {'ratio':>6}"
            f"   {'cpu ratio':>9} {'+compose':>8}   {'boto3 proc':>10} {'handler proc':>12} {'ratio':>6}"
            "   modules (boto3/handler)  loads boto3"]
    for logical, f in results["functions"].items():
        if "error" in f:
            rows.append(f"{logical:<32} import failed: {f['error']}")
            continue
        loads = "yes" if f["handler_imports_boto3"] else "no (deferred to the first call)"
        rows.append(f"{logical:<32} {f['boto3_import_ms_median']:>9.1f} {f['handler_import_ms_median']:>10.1f}"
                    f" {f['ratio']:>6.2f}   {f['handler_cold_ms_median']:>11.1f} {f['cold_ratio']:>6.2f}"
                    f"   {f['cpu_ratio']:>9.2f} {f['cold_cpu_ratio']:>8.2f}"
                    f"   {f['boto3_process_ms_median']:>10.1f}"
                    f" {f['handler_process_ms_median']:>12.1f} {f['process_ratio']:>6.2f}"
                    f"   {f['boto3_modules']:>5}/{f['handler_modules']:<17}{loads}")
    return "\n".join(rows)


# ------------------------------------------------------------------ -X importtime chains


def import_tree(module: str, spec: dict[str, Any]) -> list[tuple[str, int, int, list[str]]]:
    """(module, self us, cumulative us, the chain of modules that imported it, outermost first) for
    every module the import loads, from `-X importtime`."""
    done = _child(spec, module, flags=("-X", "importtime"))
    if done.returncode != 0:
        raise RuntimeError((done.stderr.strip().splitlines() or ["failed"])[-1])
    nodes: list[tuple[str, int, int, int]] = []  # (name, self, cumulative, depth), children before parents
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        own, cumulative, name = line[len("import time:"):].split("|")
        nodes.append((name.strip(), int(own), int(cumulative), (len(name) - len(name.lstrip()) - 1) // 2))
    parent: list[int | None] = [None] * len(nodes)
    waiting: dict[int, list[int]] = {}  # depth -> nodes whose parent has not been printed yet
    for index, node in enumerate(nodes):
        for child in waiting.pop(node[3] + 1, []):
            parent[child] = index
        waiting.setdefault(node[3], []).append(index)
    tree = []
    for index, (name, own, cumulative, _) in enumerate(nodes):
        chain, at = [], parent[index]
        while at is not None:
            chain.insert(0, nodes[at][0])
            at = parent[at]
        tree.append((name, own, cumulative, chain))
    return tree


def heaviest_beyond_boto3(spec: dict[str, Any], count: int, runs: int = 3) -> list[tuple[str, float, list[str]]]:
    """The `count` library imports that cost the handler most beyond `import boto3`: (package, ms,
    chain). A library import is where a chain enters a package from outside it (jinja2 from
    usage_ledger.adapters.email, pydantic from aws_lambda_powertools...); its cost is the self time
    of it and of everything under it that `import boto3` alone does not load (median of `runs` runs;
    a library entered inside another is counted in both). The project's own modules are not listed:
    they are the chains."""
    own_modules = {"usage_ledger", *(file.stem for file in Path(spec["task"]).glob("*.py"))}
    baseline = {node[0] for node in import_tree("boto3", spec)}
    costs: dict[str, list[int]] = {}
    chains: dict[str, list[str]] = {}
    for _ in range(runs):
        beyond: dict[str, int] = {}
        for name, own, _, chain in import_tree(spec["module"], spec):
            chains.setdefault(name, chain)
            if name not in baseline:
                for holder in (*chain, name):
                    beyond[holder] = beyond.get(holder, 0) + own
        for name, cost in beyond.items():
            costs.setdefault(name, []).append(cost)

    def entry(name: str) -> bool:
        chain, package = chains[name], name.split(".")[0]
        return (name not in baseline and package not in own_modules
                and (not chain or chain[-1].split(".")[0] != package))

    # one row per package and importer: `from pydantic import BaseModel` enters pydantic at several
    # modules (its lazy attributes), all of them straight under the module that asked
    rows: dict[tuple[str, tuple[str, ...]], float] = {}
    for name in filter(entry, costs):
        key = (name.split(".")[0], tuple(chains[name]))
        rows[key] = rows.get(key, 0.0) + statistics.median(costs[name] + [0] * (runs - len(costs[name]))) / 1000
    ranked = sorted(rows.items(), key=lambda row: -row[1])[:count]
    return [(package, cost, list(chain)) for (package, chain), cost in ranked]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--chains", type=int, default=0, metavar="N")
    parser.add_argument("--build", type=Path, metavar="DIR",
                        help="import from this `sam build` output (make build-host: .aws-sam/host)")
    parser.add_argument("--no-write", action="store_true", help="do not update bench/results.json")
    args = parser.parse_args()
    build = args.build.resolve() if args.build else None
    results = run(args.rounds, build) if args.rounds > 0 else None  # --rounds 0: only the chains
    if results:
        print(table(results))
    if results and not args.no_write:
        path = ROOT / "bench" / "results.json"
        document = json.loads(path.read_text()) if path.exists() else {}
        document.pop("cold_start_imports", None)  # the median-of-5 figures this replaces
        document["imports_built" if build else "imports"] = results
        path.write_text(json.dumps(document, indent=2) + "\n")
    for logical, spec in handlers(build=build).items() if args.chains else ():
        print(f"\n{logical}: costliest library imports beyond `import boto3` (ms under -X importtime, chain)")
        try:
            for name, cost, chain in heaviest_beyond_boto3(spec, args.chains):
                print(f"  {cost:7.1f}  {name}  <- {' <- '.join(reversed(chain)) or '(top level)'}")
        except RuntimeError as error:
            print(f"  import failed: {error}")


if __name__ == "__main__":
    main()
