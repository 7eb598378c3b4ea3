"""Generated models accept/reject exactly like jsonschema (Draft 2020-12 + FormatChecker).

The corpus is ``differential_cases.json``; :data:`KNOWN_DIFFERENCES` lists the instances where
the models deliberately differ (documented in contract/README.md, "Known differences").
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Any

import pydantic
import pytest
from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource

ROOT = Path(__file__).resolve().parents[2]
CONTRACT = ROOT / "tests" / "codegen" / "golden" / "contract"
CASES = json.loads((Path(__file__).parent / "differential_cases.json").read_text("utf-8"))

# (model, JSON of the instance) → why models differ from JSON Schema here.
KNOWN_DIFFERENCES: dict[tuple[str, str], str] = {
    (
        "SendMessageRequest",
        json.dumps({"replyTo": 1.0, "room": "a", "text": "x"}, sort_keys=True),
    ): "JSON Schema counts 1.0 as an integer; strict models keep integer fields int-only",
    (
        "ChatEvent",
        json.dumps({"at": None, "from": "u1", "text": "x", "type": "text"}, sort_keys=True),
    ): "optional members are `T | None = None` in pydantic: explicit null ≡ absent",
}


def _schemas() -> tuple[dict[str, tuple[str, str]], Registry]:
    """Title → (file URI, pointer) of every titled root/$defs entry, plus a registry."""
    registry: Registry = Registry()
    where: dict[str, tuple[str, str]] = {}
    for path in sorted(CONTRACT.rglob("*.json")):
        if path.name == "contract.json":
            continue
        doc = json.loads(path.read_text("utf-8"))
        uri = path.as_uri()
        registry = registry.with_resource(uri, Resource.from_contents(doc))
        if "title" in doc:
            where[doc["title"]] = (uri, "")
        for key in doc.get("$defs", {}):
            where[key] = (uri, f"/$defs/{key}")
    return where, registry.crawl()


def _cases() -> list[Any]:
    params = []
    for model, groups in CASES.items():
        for verdict in ("valid", "invalid"):
            for index, instance in enumerate(groups[verdict]):
                params.append(pytest.param(model, instance, id=f"{model}-{verdict}-{index}"))
    return params


def test_corpus_size() -> None:
    total = sum(len(g["valid"]) + len(g["invalid"]) for g in CASES.values())
    print(f"differential corpus: N={total}, known differences K={len(KNOWN_DIFFERENCES)}")
    assert total >= 60


@pytest.mark.parametrize(("model_name", "instance"), _cases())
def test_models_agree_with_jsonschema(model_name: str, instance: Any) -> None:
    where, registry = _schemas()
    uri, pointer = where[model_name]
    validator = Draft202012Validator(
        {"$ref": f"{uri}#{pointer}"}, registry=registry, format_checker=FormatChecker()
    )
    expected = validator.is_valid(instance)
    sys.path.insert(0, str(ROOT / "tests" / "codegen" / "golden"))
    try:
        models = importlib.import_module("expected.models")
    finally:
        sys.path.pop(0)
    try:
        getattr(models, model_name).model_validate(instance, strict=True)
        actual = True
    except pydantic.ValidationError:
        actual = False
    key = (model_name, json.dumps(instance, sort_keys=True))
    if key in KNOWN_DIFFERENCES:
        assert actual != expected, f"known difference no longer differs: {key}"
    else:
        assert actual == expected, f"{model_name} {instance!r}: jsonschema says {expected}"
