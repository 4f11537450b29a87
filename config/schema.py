"""The OpenAPI schema's error responses: documented once, for every API operation, in one shape.

Views annotate their success responses; every error goes through ``config.errors`` and has the body
``{"error": {"code", "message", "fields"?}}``. Without this hook the schema documented only the success
codes, so a client (or schemathesis's status-code check) could not know that a 400, 401, 404, 429 or 503 is
part of the contract.
"""
from __future__ import annotations

from typing import Any

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Every API error: a machine-readable code, a message, and the offending fields if any.",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {"type": "string", "description": "Stable machine-readable code, e.g. invalid_input."},
                "message": {"type": "string"},
                "fields": {
                    "type": "object",
                    "additionalProperties": {},
                    "description": "Field name -> its errors (a list of messages, or nested for nested input).",
                },
            },
            "required": ["code", "message"],
        },
    },
    "required": ["error"],
}

ERROR_REF: dict[str, Any] = {"$ref": "#/components/schemas/Error"}


def error_response(description: str) -> Any:
    """An error response in the shared shape, for a view's ``@extend_schema(responses=...)``."""
    from drf_spectacular.utils import OpenApiResponse

    return OpenApiResponse(response=ERROR_REF, description=description)


# What any API operation may answer, whatever it does.
COMMON_ERRORS: dict[str, str] = {
    "400": "Invalid input (body, query or header), named in `fields`; also a malformed or too deeply nested JSON body.",
    "401": "Not authenticated, on an operation that needs a user (or a bad token).",
    "403": "Authenticated but not allowed (staff only, CSRF check failed, CAPTCHA refused).",
    "404": "No such resource, or none this client may see.",
    "429": "Rate limited; `Retry-After` says when to try again.",
    "503": "Briefly unavailable: the database is unreachable (code service_unavailable) or, for votes and new "
           "battles, the rate-limit store (rate_limit_unavailable). Retry after `Retry-After`; a vote with the same "
           "`Idempotency-Key`, so that it is never counted twice.",
}
# What an operation that changes state may answer in addition.
WRITE_ERRORS: dict[str, str] = {
    "409": "The resource's state does not allow this now (already voted, run finished, ...).",
    "413": "The request body is over the size limit (settings.DATA_UPLOAD_MAX_MEMORY_SIZE).",
    "415": "The body is not JSON (Content-Type must be application/json).",
}
UNSAFE_METHODS = {"post", "put", "patch", "delete"}


def document_error_responses(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: add the shared ``Error`` component and the error responses.

    Replaces any earlier, looser ``Error`` component; an operation that documents a code itself keeps its own.
    """
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    reference = {"application/json": {"schema": ERROR_REF}}
    for path, operations in result.get("paths", {}).items():
        if not path.startswith("/api/"):
            continue
        for method, operation in operations.items():
            if method not in UNSAFE_METHODS | {"get", "head", "options"}:
                continue  # "parameters", "summary": path-level keys, not operations
            errors = COMMON_ERRORS | (WRITE_ERRORS if method in UNSAFE_METHODS else {})
            responses = operation.setdefault("responses", {})
            for code, description in errors.items():
                responses.setdefault(code, {"description": description, "content": reference})
    return result
