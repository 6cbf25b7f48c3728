"""Programmatic checks that need no judge model: answers that are empty, refusals, invalid JSON where JSON
was asked for, JSON that breaks the requested schema, tool calls whose arguments break the tool's schema.

Each arm either passes or fails; the verdict is decisive only when exactly one arm fails (the other judges
decide the rest). Schemas are checked with ``jsonschema`` when it is installed (``tierroute[evals]``), else
with a small subset (type, required, properties, enum, items).
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from .base import Answer, Pair, Verdict

# Openings of refusals, matched on the first 200 characters (lower-cased).
_REFUSAL = re.compile(r"^\s*(i'm sorry|i am sorry|sorry, (but )?i|i can(no|')t (help|assist|comply)|i cannot|"
                      r"i'm (not able|unable)|i am (not able|unable)|as an ai\b)")


class ChecksJudge:
    name = "checks"

    async def judge(self, pair: Pair) -> Verdict:
        routed, reference = problems(pair, pair.routed), problems(pair, pair.reference)
        detail = {"routed": routed, "reference": reference}
        if routed and not reference:
            return Verdict(self.name, "loss", detail=detail)
        if reference and not routed:
            return Verdict(self.name, "win", detail=detail)
        return Verdict(self.name, None, detail=detail)


def problems(pair: Pair, answer: Answer) -> list[str]:
    """What is wrong with ``answer`` for ``pair``'s request, by rule; empty when nothing is."""
    body = pair.body
    found: list[str] = []
    tools = {t.get("function", {}).get("name"): t.get("function", {}).get("parameters")
             for t in body.get("tools") or () if isinstance(t, dict)}
    if answer.tool_calls:
        for call in answer.tool_calls:
            function = call.get("function") or {}
            try:
                arguments = orjson.loads(function.get("arguments") or "{}")
            except orjson.JSONDecodeError:
                found.append(f"tool call {function.get('name')!r}: arguments are not JSON")
                continue
            if function.get("name") not in tools:
                found.append(f"tool call to unknown tool {function.get('name')!r}")
            elif isinstance(tools[function.get("name")], dict):
                found += [f"tool call {function.get('name')!r}: {e}" for e in schema_errors(arguments, tools[function.get("name")])]
        return found
    text = answer.text.strip()
    if not text:
        return ["empty answer"]
    if _REFUSAL.match(text[:200].lower()):
        found.append("refusal")
    response_format = body.get("response_format") or {}
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind in ("json_object", "json_schema"):
        try:
            value = orjson.loads(_unfenced(text))
        except orjson.JSONDecodeError:
            return [*found, "not valid JSON (JSON was requested)"]
        schema = (response_format.get("json_schema") or {}).get("schema") if kind == "json_schema" else None
        if isinstance(schema, dict):
            found += schema_errors(value, schema)
    return found


def _unfenced(text: str) -> str:
    match = re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", text, re.S)
    return match.group(1) if match else text


def schema_errors(value: Any, schema: dict[str, Any]) -> list[str]:
    try:
        import jsonschema
    except ImportError:
        return _subset_errors(value, schema, "$")
    validator = jsonschema.Draft202012Validator(schema)
    return [f"schema: {e.message[:200]}" for e in list(validator.iter_errors(value))[:5]]


_TYPES: dict[str, Any] = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None),
                          "integer": int, "number": (int, float)}


def _subset_errors(value: Any, schema: dict[str, Any], where: str) -> list[str]:
    errors: list[str] = []
    expected = schema.get("type")
    if isinstance(expected, str) and expected in _TYPES:
        ok = isinstance(value, _TYPES[expected]) and not (expected in ("integer", "number") and isinstance(value, bool))
        if not ok:
            return [f"schema: {where} is not of type {expected!r}"]
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"schema: {where} is not one of {schema['enum']!r}")
    if isinstance(value, dict):
        for name in schema.get("required") or ():
            if name not in value:
                errors.append(f"schema: {where} misses required property {name!r}")
        for name, sub in (schema.get("properties") or {}).items():
            if name in value and isinstance(sub, dict):
                errors += _subset_errors(value[name], sub, f"{where}.{name}")
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value[:100]):
            errors += _subset_errors(item, schema["items"], f"{where}[{i}]")
    return errors
