"""The OpenAPI schema's error responses: every operation documents the `{"detail", "code"}` body for the 4xx/5xx
statuses it can answer with (drf-spectacular postprocessing hook, see SPECTACULAR_SETTINGS)."""

from __future__ import annotations

from typing import Any

ERROR_COMPONENT = "Error"
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "What was wrong and what to do, with a machine-readable code. Field errors add `fields`; some "
    "refusals add figures (for example a quota's limit).",
    "properties": {
        "detail": {"type": "string", "description": "A sentence saying what was wrong and what to do."},
        "code": {"type": "string", "description": "Stable code to branch on, e.g. not_found, invalid, throttled."},
        "fields": {"type": "object", "additionalProperties": True, "description": "Per-field messages (400)."},
    },
    "required": ["detail", "code"],
    "additionalProperties": True,
}
DESCRIPTIONS = {
    "400": "The request was not valid (a field, a query parameter, malformed JSON).",
    "401": "No valid credentials: the API token is unknown, revoked or expired, or a login is needed.",
    "403": "Signed in but not allowed: a missing role, or a token without the scope this call needs.",
    "404": "No such object among those you may see (private objects answer like missing ones), or no such page.",
    "409": "The object is not in a state that allows this (for example already published or cancelled).",
    "413": "The request body or file is over the size limit.",
    "415": "The body's content type is not one this operation reads.",
    "429": "A rate limit or quota was reached; the detail says when to try again.",
    "500": "An error on our side; it has been logged.",
}


def _applicable(method: str, path: str, operation: dict[str, Any]) -> list[str]:
    codes = ["401", "403", "429", "500"]
    params = operation.get("parameters", [])
    if "{" in path or any(p.get("name") == "page" for p in params):
        codes.append("404")  # an object that is not visible, or a page past the end
    if operation.get("requestBody") is not None or method != "get" or params:
        codes.append("400")
    if method in {"post", "put", "patch"}:
        codes += ["404", "409", "413", "415"]
    return sorted(set(codes))


def add_error_responses(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """Postprocessing hook: add the Error component and the error responses every operation can give."""
    result.setdefault("components", {}).setdefault("schemas", {})[ERROR_COMPONENT] = ERROR_SCHEMA
    ref = {"$ref": f"#/components/schemas/{ERROR_COMPONENT}"}
    for path, operations in result.get("paths", {}).items():
        for method, operation in operations.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            for code in _applicable(method, path, operation):
                responses.setdefault(
                    code, {"description": DESCRIPTIONS[code], "content": {"application/json": {"schema": ref}}}
                )
    return result
