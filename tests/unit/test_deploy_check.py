"""The deploy check's own rules (infra/deploy_check.py, infra/checkov_check.py), on small hand-made
builds: CI runs them on the real `sam build` output (make deploy-check)."""
from __future__ import annotations

import compileall
import sys
from pathlib import Path

from bench import imports
from infra import checkov_check, deploy_check


def _spec(task: Path, module: str = "app") -> dict:
    return {"python": sys.executable, "flags": ("-s",), "path": [str(task)], "module": module,
            "attribute": "lambda_handler", "parts": [], "env": {"PYTHONDONTWRITEBYTECODE": "1"},
            "cwd": str(task), "task": str(task), "opt": None}


def test_a_handler_shipped_without_bytecode_is_reported_and_with_it_is_not(tmp_path):
    (tmp_path / "app.py").write_text("import helper\ndef lambda_handler(event, context):\n    return helper.X\n")
    (tmp_path / "helper.py").write_text("X = 1\n")
    found = deploy_check.handler_problems("SomeFunction", _spec(tmp_path))
    assert sorted(Path(problem.rsplit(": ", 1)[1]).name for problem in found) == ["app.py", "helper.py"]
    assert not (tmp_path / "__pycache__").exists()  # as in Lambda, the check writes no bytecode
    # what packaging/Makefile does: unchecked hash-based bytecode, used whatever the files' timestamps
    assert compileall.compile_dir(str(tmp_path), quiet=1,
                                  invalidation_mode=compileall.py_compile.PycInvalidationMode.UNCHECKED_HASH)
    (tmp_path / "helper.py").touch()
    assert deploy_check.handler_problems("SomeFunction", _spec(tmp_path)) == []


def test_a_handler_that_does_not_import_is_reported(tmp_path):
    (tmp_path / "app.py").write_text("import not_in_any_layer\n")
    [problem] = deploy_check.handler_problems("SomeFunction", _spec(tmp_path))
    assert "does not import" in problem and "not_in_any_layer" in problem


def test_a_layer_with_the_runtimes_packages_and_a_layer_on_the_page_are_reported(tmp_path):
    (tmp_path / "DomainLayer" / "python" / "botocore").mkdir(parents=True)
    (tmp_path / "DomainLayer" / "python" / "lib" / "python3.12" / "site-packages" / "jmespath").mkdir(parents=True)
    (tmp_path / "DomainLayer" / "python" / "usage_ledger").mkdir()
    resources = {
        "DomainLayer": {"Type": "AWS::Serverless::LayerVersion", "Properties": {"ContentUri": "DomainLayer"}},
        "WebPageFunction": {"Type": "AWS::Serverless::Function",
                            "Properties": {"Layers": [{"Ref": "DomainLayer"}, {"Ref": "PdfLayer"}]}},
    }
    problems = deploy_check.layer_problems(tmp_path, resources)
    assert any("ships botocore" in problem for problem in problems)
    assert any("ships jmespath" in problem for problem in problems)
    assert any("WebPageFunction: has layers" in problem for problem in problems)
    assert any("layer PdfLayer was not built" in problem for problem in problems)
    assert len(problems) == 4


def test_every_deliberate_checkov_finding_names_its_resources_in_the_deploy_doc():
    rows = checkov_check.explained()
    assert rows["CKV_AWS_117"] == "AWS::Serverless::Function"
    assert rows["CKV_AWS_27"] == "AWS::SQS::Queue"
    assert "CKV_AWS_28" not in rows  # every table has point-in-time recovery: nothing to explain
    assert "CKV_AWS_26" not in rows  # the alarm topic is encrypted: nothing to explain
    assert imports.shipped({"task": "/var/task", "opt": "/opt"}, ["/opt/python/x.py", "/usr/lib/y.py"]) == [
        "/opt/python/x.py"]
