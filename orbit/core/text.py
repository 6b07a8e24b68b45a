"""Text from outside: whether a database can store it, and how to print it safely.

A NUL character or an unpaired surrogate (`"\\ud800"`) is valid JSON and a valid Python
string, but PostgreSQL refuses the one and UTF-8 cannot encode the other: each would be a
500 when saved or shown, so they are refused on the way in. Control characters are stored
as given but escaped wherever text is printed for people or parsed line by line (text
logs, the CLI), so a newline cannot forge a log line and an escape code cannot drive a
terminal.
"""

from __future__ import annotations

from typing import Any


def printable(text: str) -> str:
    """`text` with every control, format or surrogate character written as an escape
    (`\\n`, `\\x1b`, `\\u202e`); everything else as it is."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else _escape(ch) for ch in text)


def _escape(ch: str) -> str:
    escaped = ch.encode("unicode_escape").decode("ascii")
    return escaped if escaped != ch else f"\\u{ord(ch):04x}"


def unstorable_text(value: Any, where: str = "") -> str | None:
    """Where in `value` a string (or key) holds a NUL or an unpaired surrogate, or None.

    Iterative, like nested_deeper_than in orbit.core.limits, so a deep value cannot exhaust the stack here."""
    stack: list[tuple[Any, str]] = [(value, where)]
    while stack:
        item, path = stack.pop()
        if isinstance(item, str):
            if not storable(item):
                return printable(path) or "(the value)"
        elif isinstance(item, dict):
            for key, child in item.items():
                child_path = f"{path}.{key}" if path else str(key)
                if isinstance(key, str) and not storable(key):
                    return printable(child_path)
                stack.append((child, child_path))
        elif isinstance(item, list | tuple):
            stack.extend((child, f"{path}[{i}]") for i, child in enumerate(item))
    return None


#: What every refusal of such text says (the field named before it).
UNSTORABLE = "cannot hold a NUL character or an unpaired surrogate"


def storable(text: str) -> bool:
    """Whether a database can store `text`: no NUL, and encodable as UTF-8."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
