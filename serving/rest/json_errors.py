"""The texts of TF Serving's JSON errors, as rapidjson (which it uses) writes them.

Clients match on these: a value rendered in rapidjson's debug form, cut off
after 256 bytes (json_tensor.cc kMaxJsonDebugStringBytes); its JSON type name;
and rapidjson's parse-error messages for what Python's json module reports.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from typing import Any

_DEBUG_LIMIT = 256  # json_tensor.cc kMaxJsonDebugStringBytes
_INDENT = "    "


def json_type(val: Any) -> str:
    if val is None:
        return "Null"
    if val is True:
        return "True"
    if val is False:
        return "False"
    if isinstance(val, dict):
        return "Object"
    if isinstance(val, list):
        return "Array"
    if isinstance(val, str):
        return "String"
    return "Number"


def _number_text(val: float | int) -> str:
    if isinstance(val, int):
        return str(val)
    if math.isnan(val):
        return "NaN"
    if math.isinf(val):
        return "Infinity" if val > 0 else "-Infinity"
    text = repr(val)
    # rapidjson writes 1e30 and 1e-7 where Python writes 1e+30 and 1e-07.
    return re.sub(r"e([+-]?)0*(\d)", lambda m: "e" + m.group(1).replace("+", "") + m.group(2),
                  text)


def _debug_tokens(val: Any, level: int) -> Iterator[str]:
    if isinstance(val, dict):
        if not val:
            yield "{}"
            return
        yield "{"
        for i, (k, v) in enumerate(val.items()):
            yield ("," if i else "") + "\n" + _INDENT * (level + 1) + json.dumps(k) + ": "
            yield from _debug_tokens(v, level + 1)
        yield "\n" + _INDENT * level + "}"
    elif isinstance(val, list):
        yield "["
        for i, v in enumerate(val):
            if i:
                yield ", "
            yield from _debug_tokens(v, level)
        yield "]"
    elif isinstance(val, str):
        yield json.dumps(val, ensure_ascii=False)
    elif val is None:
        yield "null"
    elif isinstance(val, bool):
        yield "true" if val else "false"
    else:
        yield _number_text(val)


def debug_string(val: Any) -> str:
    """rapidjson's pretty single-line-array form, cut off once 256 bytes are written."""
    out: list[str] = []
    size = 0
    for token in _debug_tokens(val, 0):
        if size >= _DEBUG_LIMIT:
            break
        out.append(token)
        size += len(token.encode())
    return "".join(out)


_PY_TO_RAPIDJSON = {
    "Expecting value": "Invalid value.",
    "Expecting property name enclosed in double quotes": "Missing a name for object member.",
    "Expecting ':' delimiter": "Missing a colon after a name of object member.",
    "Unterminated string starting at": "Missing a closing quotation mark in string.",
    "Invalid \\escape": "Invalid escape character in string.",
    "Invalid \\uXXXX escape": "Incorrect hex digit after \\u escape in string.",
    "Invalid control character at": "Invalid encoding in string.",
}


def _innermost_bracket(text: str, pos: int) -> str:
    stack: list[str] = []
    in_string = escaped = False
    for ch in text[:pos]:
        if in_string:
            escaped, in_string = (False, True) if escaped else (ch == "\\", ch != '"')
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            stack.append(ch)
        elif ch in "]}" and stack:
            stack.pop()
    return stack[-1] if stack else "["


def parse_error_text(err: json.JSONDecodeError, text: str) -> str:
    if err.msg == "Expecting ',' delimiter":
        if _innermost_bracket(text, err.pos) == "{":
            return "Missing a comma or '}' after an object member."
        return "Missing a comma or ']' after an array element."
    return _PY_TO_RAPIDJSON.get(err.msg, "Invalid value.")
