"""The API definition in OpenAPI 3.0 as well as 3.1, for clients and test suites that read only 3.0.

FastAPI writes OpenAPI 3.1 (JSON Schema 2020-12). OGC API – Features Part 1 names OpenAPI 3.0, and
validators such as the OGC test suites look for a 3.0 document, so ``GET /openapi-3.0.json`` serves
the same definition rewritten in 3.0's schema dialect. Only what this API's document uses is
rewritten (details: docs/api.md):

- ``anyOf``/``oneOf`` with ``{"type": "null"}`` → the other alternative(s) with ``nullable: true``;
- a numeric ``exclusiveMinimum``/``exclusiveMaximum`` → ``minimum``/``maximum`` with the boolean flag;
- ``const`` → a one-value ``enum``; ``examples`` (a list) → ``example`` (its first value);
- a ``$ref`` with sibling keywords → ``allOf: [{"$ref": ...}]`` beside them (3.0 ignores siblings).
"""

from __future__ import annotations

from typing import Any

OPENAPI_30_VERSION = "3.0.3"
OPENAPI_30_MEDIA_TYPE = "application/vnd.oai.openapi+json;version=3.0"


def downgrade(document: dict[str, Any]) -> dict[str, Any]:
    """An OpenAPI 3.1 document (as FastAPI writes it) rewritten as OpenAPI 3.0.3; the input is kept."""
    converted: dict[str, Any] = _walk(document)
    converted["openapi"] = OPENAPI_30_VERSION
    converted.pop("jsonSchemaDialect", None)
    converted.pop("webhooks", None)
    return converted


def _walk(node: Any) -> Any:
    if isinstance(node, list):
        return [_walk(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {key: _walk(value) for key, value in node.items()}
    return _schema_30(converted) if _looks_like_schema(converted) else converted


def _looks_like_schema(node: dict[str, Any]) -> bool:
    """Whether ``node`` is a JSON Schema object whose 3.1-only keywords need rewriting."""
    return any(
        key in node for key in ("anyOf", "oneOf", "exclusiveMinimum", "exclusiveMaximum", "const", "examples")
    ) or ("$ref" in node and len(node) > 1)


def _schema_30(schema: dict[str, Any]) -> dict[str, Any]:
    for key in ("anyOf", "oneOf"):
        if key in schema:
            options = [o for o in schema[key] if o != {"type": "null"}]
            if len(options) < len(schema[key]):
                schema["nullable"] = True
                if len(options) == 1:
                    del schema[key]
                    single = options[0]
                    schema = {**single, **schema} if "$ref" not in single else {**schema, "allOf": [single]}
                else:
                    schema[key] = options
    for bound, limit in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if isinstance(schema.get(bound), int | float) and not isinstance(schema.get(bound), bool):
            schema[limit] = schema[bound]
            schema[bound] = True
    if "const" in schema:
        schema["enum"] = [schema.pop("const")]
    if isinstance(schema.get("examples"), list):
        examples = schema.pop("examples")
        if examples:
            schema["example"] = examples[0]
    if "$ref" in schema and len(schema) > 1:
        reference = {"$ref": schema.pop("$ref")}
        schema["allOf"] = [reference, *schema.get("allOf", [])]
    return schema
