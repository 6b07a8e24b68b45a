"""Limits on what callers send: how deeply JSON nests, and what run metadata may be.

One depth limit (ORBIT_MAX_JSON_DEPTH) for every way in: the API refuses deep bodies
before parsing them into schemas (orbit/web/middleware.py); run metadata from any other
source (the dashboard's form, the CLI, code, a pipeline's default metadata) is checked by
`validate_metadata` when the run or the pipeline row is written. The depth check is
iterative, so a hostile document cannot exhaust the stack here; JSON typed into a form is
parsed by `parse_json`, so one nested past the parser's recursion is a clear error too.
Metadata holding a NUL or an unpaired surrogate is refused: no database stores it
(orbit.core.text).
"""

from __future__ import annotations

import json
from typing import Any

from orbit.core.conf import orbit_settings
from orbit.core.exceptions import InvalidMetadata, MetadataTooLarge
from orbit.core.text import UNSTORABLE, unstorable_text


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


#: json.dumps(value, allow_nan=False), without making an encoder per call (json.dumps
#: keeps one only for its default options): this runs once per run queued.
_ENCODE = json.JSONEncoder(allow_nan=False).encode


def validate_metadata(
    metadata: Any, *, depth: int | None = None, limit: int | None = None
) -> dict[str, Any]:
    """A JSON object within ORBIT_MAX_METADATA_BYTES, or a clear error. `depth` and
    `limit` are ORBIT_MAX_JSON_DEPTH and ORBIT_MAX_METADATA_BYTES unless given: a caller
    checking a batch reads the settings once (`metadata_limits`), not twice per run.

    It runs once per run queued, so the common case is read off the encoded text: JSON
    written with ASCII escapes (json.dumps' default) holds one `{` and no `[` only when
    nothing nests, and a NUL or a surrogate only as `\\u0000` or `\\udXXX`; either sign
    (a string may show one too) sends it to the walk that says where."""
    if metadata is None:
        return {}
    if not isinstance(metadata, dict):
        raise InvalidMetadata(f"Run metadata must be a JSON object, not {type(metadata).__name__}")
    try:
        encoded = _ENCODE(metadata)
    except (TypeError, ValueError) as exc:
        raise InvalidMetadata(f"Run metadata is not JSON-serialisable: {exc}") from None
    if depth is None:
        depth = orbit_settings.max_json_depth
    flat = depth >= 1 and "[" not in encoded and encoded.count("{") == 1
    if not flat and nested_deeper_than(metadata, depth):
        raise InvalidMetadata(
            f"Run metadata is nested deeper than {depth} levels (ORBIT_MAX_JSON_DEPTH)"
        )
    where = (
        None if "\\u0000" not in encoded and "\\ud" not in encoded else unstorable_text(metadata)
    )
    if where is not None:
        raise InvalidMetadata(f"Run metadata {UNSTORABLE} (at {where})")
    if limit is None:
        limit = orbit_settings.max_metadata_bytes
    size = len(encoded)  # ASCII: as many bytes as characters
    if size > limit:
        raise MetadataTooLarge(
            f"Run metadata is {size} bytes; the limit is {limit} bytes (ORBIT_MAX_METADATA_BYTES)"
        )
    return metadata


def metadata_limits() -> dict[str, int]:
    """The settings `validate_metadata` applies, read once, as its keyword arguments."""
    return {"depth": orbit_settings.max_json_depth, "limit": orbit_settings.max_metadata_bytes}


def parse_json(text: str, *, what: str = "Metadata") -> Any:
    """`text` parsed as JSON; InvalidMetadata says where it is wrong or that it nests too deeply."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidMetadata(
            f"{what} is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None
    except RecursionError:
        depth = orbit_settings.max_json_depth
        raise InvalidMetadata(
            f"{what} is nested deeper than {depth} levels (ORBIT_MAX_JSON_DEPTH)"
        ) from None
