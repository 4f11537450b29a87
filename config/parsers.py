"""The API's JSON parser: DRF's, plus a cap on nesting depth.

DRF's JSONParser turns a ValueError into a 400 but lets RecursionError through: a body of 10,000 nested
brackets was a 500. Bodies merely deep (a few hundred levels, under Python's recursion limit) parse, but
then recurse again wherever they are walked (serializers, json.dumps, Postgres jsonb). No API input nests
more than a few levels, so anything deeper than MAX_DEPTH is refused before it is parsed.

It also refuses NUL characters anywhere in the body (400 naming the top-level field): see nul_field.
"""
from __future__ import annotations

import re
from io import BytesIO
from typing import Any

from rest_framework.exceptions import ParseError, ValidationError
from rest_framework.parsers import JSONParser

MAX_DEPTH = 200
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')  # a JSON string literal (brackets inside one do not nest)
_BRACKET = re.compile(rb"[\[\]{}]")


def json_depth_exceeds(body: bytes, limit: int) -> bool:
    """Whether the brackets of ``body`` (a JSON text, strings skipped) nest more than ``limit`` deep."""
    depth = 0
    for match in _BRACKET.finditer(_STRING.sub(b'""', body)):
        if match.group() in b"[{":
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


class DepthLimitedJSONParser(JSONParser):
    """DRF's JSONParser, refusing JSON nested deeper than MAX_DEPTH with a 400 (code parse_error)."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: dict[str, Any] | None = None) -> Any:
        # The body is bounded by settings.DATA_UPLOAD_MAX_MEMORY_SIZE (config.middleware), so reading it whole is fine.
        body = stream.read() if stream is not None else b""
        if json_depth_exceeds(body, MAX_DEPTH):
            raise ParseError(f"JSON parse error - nested more than {MAX_DEPTH} levels deep")
        try:
            data = super().parse(BytesIO(body), media_type, parser_context)
        except RecursionError as exc:  # the scan above should prevent this; never a 500 if it does not
            raise ParseError("JSON parse error - nested too deeply") from exc
        if b"\\u0000" in body and (field := nul_field(data)) is not None:  # (cheap test first: rarely true)
            raise ValidationError({field: ["must not contain NUL characters (\\u0000)"]})
        return data


def nul_field(data: Any) -> str | None:
    """The top-level key (or "non_field_errors") under which ``data`` holds a NUL character, else None.

    Postgres stores NUL in neither text nor jsonb: a NUL that got past the serializers (in a JSON field, a
    dict of aspects, a nested key) failed in the database as a 500. No API input has a use for one.
    """
    items = list(data.items()) if isinstance(data, dict) else [("non_field_errors", data)]
    for field, value in items:
        stack = [field, value]
        while stack:  # iterative: depth is already capped, but no recursion is needed
            item = stack.pop()
            if isinstance(item, str) and "\x00" in item:
                return field
            if isinstance(item, dict):
                stack.extend(item.keys())
                stack.extend(item.values())
            elif isinstance(item, list):
                stack.extend(item)
    return None
