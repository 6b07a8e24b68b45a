"""How deeply a JSON value nests: one limit (ORBIT_MAX_JSON_DEPTH) for every way in.

The API refuses deep bodies before parsing them into schemas (orbit/middleware.py); run
metadata from any other source (the dashboard's form, the CLI, code) is checked when the
run is created. Iterative, so a hostile document cannot exhaust the stack here.
"""

from __future__ import annotations

from typing import Any


def nested_deeper_than(value: Any, limit: int) -> bool:
    """Whether objects and arrays in `value` nest more than `limit` levels deep."""
    stack: list[tuple[Any, int]] = [(value, 1)] if isinstance(value, dict | list) else []
    while stack:
        item, level = stack.pop()
        if level > limit:
            return True
        children = item.values() if isinstance(item, dict) else item
        stack.extend((c, level + 1) for c in children if isinstance(c, dict | list))
    return False
