"""Reads template.yaml the way CloudFormation's AWS::LanguageExtensions transform leaves it.

`load_template()` is what every reader of the template uses (the moto deploy, the local gateway and
pollers, the OpenAPI generator, the template and security tests, the bench): short-form tags become
{"Ref": ...} / {"Fn::X": ...} dicts, and every `Fn::ForEach::<Loop>` is expanded, so readers see
the resources `sam deploy` creates, under their logical ids, before the SAM transform.

The expansion covers what template.yaml uses, with the transform's rules:
- the collection is a literal list of strings (nested loops take their own);
- `${Identifier}` and `&{Identifier}` (non-alphanumerics dropped) are replaced in output keys and
  inside `Fn::Sub` strings; a `Fn::Sub` left without variables becomes its plain string;
- `!Ref Fn` (the identifier) is the item itself, a string; `!Sub "${${Fn}}"` refers to the resource
  the item names (it becomes `${TheItem}`, read here as `{"Ref": TheItem}`, which it means). `!Ref`
  of a `!Sub` is refused: checkov cannot read it;
- `Fn::FindInMap` with literal keys is looked up in `Mappings`, as the transform does.
A `${Identifier}` in a plain string is an error here: CloudFormation and cfn-lint do not agree on
it, so the template writes `!Sub` instead.
"""
from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_PATH = ROOT / "template.yaml"
FOR_EACH = "Fn::ForEach::"


class _CfnLoader(yaml.SafeLoader):
    """YAML loader that keeps CloudFormation short-form tags as {"Fn::X": value} dicts."""


def _cfn_constructor(loader: yaml.Loader, suffix: str, node: yaml.Node) -> Any:
    tag = suffix
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if tag == "Ref":
        return {"Ref": value}
    if tag == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{tag}": value}


_CfnLoader.add_multi_constructor("!", _cfn_constructor)


def load_raw_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    """The template as written (loops not expanded)."""
    with open(path, encoding="utf-8") as handle:
        return yaml.load(handle, Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass


def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    """The template with every Fn::ForEach expanded (what CloudFormation hands the SAM transform)."""
    return expand(load_raw_template(path))


def expand(template: dict[str, Any]) -> dict[str, Any]:
    return _walk(template, {}, template.get("Mappings") or {})


def _substitute(text: str, items: dict[str, str]) -> str:
    for identifier, item in items.items():
        text = text.replace(f"${{{identifier}}}", item)
        text = text.replace(f"&{{{identifier}}}", re.sub(r"[^0-9A-Za-z]", "", item))
    return text


def _has_variables(text: str) -> bool:
    return re.search(r"\$\{(?!!)[^}]+\}", text) is not None


def _walk(node: Any, items: dict[str, str], mappings: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_walk(value, items, mappings) for value in node]
    if isinstance(node, str):
        if items and _substitute(node, items) != node:
            raise ValueError(f"{node!r}: a loop identifier outside a key or !Sub is not replaced by CloudFormation")
        return node
    if not isinstance(node, dict):
        return node
    if len(node) == 1:
        ((key, value),) = node.items()
        if key == "Ref" and isinstance(value, str):
            return items.get(value, node)
        if key == "Ref":
            raise ValueError(
                f"!Ref {value!r}: write !Sub \"${{${{Identifier}}}}\" (checkov cannot read !Ref of a !Sub)")
        if key == "Fn::Sub":
            text, *variables = value if isinstance(value, list) else [value]
            text = _substitute(text, items)
            if not variables and not _has_variables(text):
                return text
            whole = re.fullmatch(r"\$\{([0-9A-Za-z]+)\}", text)
            if items and not variables and whole:  # "${${Fn}}": the resource (or parameter) the item names
                return {"Ref": whole.group(1)}
            return {"Fn::Sub": [text, *_walk(variables, items, mappings)] if variables else text}
        if key == "Fn::FindInMap":
            keys = _walk(value, items, mappings)
            if len(keys) == 3 and all(isinstance(k, str) for k in keys):
                name, top, second = keys
                try:
                    return copy.deepcopy(mappings[name][top][second])
                except KeyError:
                    raise ValueError(f"Fn::FindInMap {keys}: no such mapping entry") from None
            return {"Fn::FindInMap": keys}
    expanded: dict[str, Any] = {}

    def put(key: str, value: Any) -> None:
        if key in expanded:
            raise ValueError(f"{key} is defined twice once loops are expanded")
        expanded[key] = value

    for key, value in node.items():
        if key.startswith(FOR_EACH):
            identifier, collection, fragment = value
            if not (isinstance(collection, list) and all(isinstance(item, str) for item in collection)):
                raise ValueError(f"{key}: the collection must be a literal list of strings, is {collection!r}")
            for item in collection:
                for out_key, out_value in _walk(fragment, {**items, identifier: item}, mappings).items():
                    put(out_key, out_value)
        else:
            put(_substitute(key, items), _walk(value, items, mappings))
    return expanded
