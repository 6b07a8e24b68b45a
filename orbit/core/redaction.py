"""Masking secrets on the way out: metadata, results and log records keep what steps need
in the database, and every place that shows or returns them masks the values of secret keys.

A key is secret when its name, lower-cased and with everything but letters and digits
removed, contains one of `ORBIT_REDACT_KEYS` read the same way: `db_password`, `X-Api-Key`,
`privateKey`, `PRIVATE-KEY` and `Set-Cookie` all match. The whole value under such a key is
replaced, whatever its type, at any depth of dicts and lists. Free text (log messages) is
masked where it reads `key=value` or `key: value`, and after `Bearer`/`Basic`. Anywhere, in
any string, the password of a URL (`postgres://user:pw@host`) is masked; in free text also
when percent-encoded, as a query string in a logged request carries it
(`postgres%3A%2F%2Fuser%3Apw%40host`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any

from orbit.core.conf import orbit_settings

MASK = "[redacted]"
TOO_DEEP = "[redacted: nested too deeply to show]"


def key_name(key: object) -> str:
    """A key's name as it is matched: lower-case letters and digits only, so case, `-`, `_`,
    spaces and camelCase make no difference (`privateKey` reads `privatekey`)."""
    return _SEPARATORS.sub("", str(key).lower())


def is_secret_key(key: object, fragments: tuple[str, ...] | None = None) -> bool:
    """Whether a key's value is masked: its name contains one of ORBIT_REDACT_KEYS."""
    return _is_secret_name(str(key), fragments or orbit_settings.redact_keys)


@lru_cache(maxsize=1024)
def _is_secret_name(key: str, fragments: tuple[str, ...]) -> bool:
    """`is_secret_key`, remembered: a worker's log line at INFO tests the same few field
    names (`event`, `run_id`, ...) once per run, each against every fragment; bounded,
    because metadata keys come from users."""
    name = key_name(key)
    return any(fragment in name for fragment in fragments)


def mask_url_passwords(text: str) -> str:
    """`text` with the password of every URL in it masked: `postgres://u:[redacted]@host`."""
    return _URL_PASSWORD.sub(rf"\1{MASK}", text) if "://" in text else text


def redact(value: Any, *, free_text: bool = False) -> Any:
    """A copy of `value` with every secret key's value masked, at any depth, and the
    password of every URL in its strings; with `free_text`, each string masked as free
    text is (`redact_text`): a log line's fields, whose strings may be anything."""
    fragments = orbit_settings.redact_keys
    try:
        return _redact(value, fragments, redact_text if free_text else mask_url_passwords)
    except RecursionError:
        return TOO_DEEP  # fail closed: nothing of a structure we could not walk is shown


def _redact(value: Any, fragments: tuple[str, ...], strings: Callable[[str], str]) -> Any:
    if isinstance(value, dict):
        return {
            k: MASK if is_secret_key(k, fragments) else _redact(v, fragments, strings)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_redact(v, fragments, strings) for v in value]
    if isinstance(value, str):
        return strings(value)
    return value


def is_plain(text: str) -> bool:
    """Whether no masking pattern can match `text` (`_PLAIN`): `redact_text` and
    `mask_url_passwords` return it as it is. Every character of plain text is printable
    too, so a log line shows it as it is (orbit/core/logs.py)."""
    return _PLAIN.fullmatch(text) is not None


def redact_text(text: str) -> str:
    """Free text with `password=...`, `"token": "..."` and `Bearer ...` values and URL
    passwords, plain or percent-encoded, masked."""
    if is_plain(text):
        return text
    text = _mask_encoded_url_passwords(mask_url_passwords(text))
    fragments = orbit_settings.redact_keys
    if not _may_hold_secret(text, fragments):
        return text
    pattern = _text_pattern(fragments)
    return pattern.sub(rf"\1\2{MASK}", _BEARER.sub(rf"\1 {MASK}", text))


def _mask_encoded_url_passwords(text: str) -> str:
    """`text` with the password of every percent-encoded URL in it masked."""
    if "%" not in text or "%2f%2f" not in text.lower():
        return text
    return _ENCODED_URL_PASSWORD.sub(rf"\1{MASK}", text)


def _may_hold_secret(text: str, fragments: tuple[str, ...]) -> bool:
    """False only when neither pattern can match `text`: no secret key's name and no
    `Bearer`/`Basic` in it, read the way the patterns read it (any case, separators
    anywhere). A quick test in C, because every log line the worker writes (one per run
    at INFO) passes here, and the key pattern's backtracking costs far more than the
    line's own formatting. It may say True for text the patterns leave alone, never False
    for text they would mask: letters are case-folded as `re.IGNORECASE` folds them
    (casefold, plus the dotless i that it matches to `i`) and every separator is dropped."""
    if text.isascii():
        # Most lines: the same squash as bytes, where dropping characters is one table
        # lookup each (a sixth of the regex's time), and one search for every name at once.
        squashed = text.encode().lower().translate(None, _ASCII_SEPARATORS)
        return _any_name(fragments).search(squashed) is not None
    squashed_text = _SEPARATORS.sub("", text.casefold().replace("\u0131", "i"))
    return any(name in squashed_text for name in (*fragments, *_SCHEMES))


@lru_cache(maxsize=8)
def _any_name(fragments: tuple[str, ...]) -> re.Pattern[bytes]:
    """One pattern for `_may_hold_secret`'s names: the fragments and the schemes."""
    names = (*fragments, *_SCHEMES)
    return re.compile(b"|".join(re.escape(name.encode()) for name in names))


def redact_logs(records: Iterable[Any] | None) -> list[Any]:
    """Step log records (`{"time", "level", "message", "fields", ...}`) with secrets masked."""
    shown = []
    for record in records or []:
        if isinstance(record, dict):
            record = redact(record)
            if isinstance(record.get("message"), str):
                record["message"] = redact_text(record["message"])
        shown.append(record)
    return shown


_SEPARATORS = re.compile(r"[^a-z0-9]+")
#: `_SEPARATORS` as bytes, for ASCII text lower-cased: every byte but a-z and 0-9.
_ASCII_SEPARATORS = bytes(c for c in range(256) if not (c in range(48, 58) or c in range(97, 123)))
#: Text none of the patterns below can match: no `=`, `:`, `%`, `@` or whitespace, which a
#: `key=value`, a URL's password (plain or encoded) and a `Bearer` token each need. Most
#: of a log line's fields are such (an event's name, a run id, a number): masking each as
#: free text without this doubled what the worker's one line per run costs to format.
#: Every character it admits is printable (`\w` is letters, digits and `_`).
_PLAIN = re.compile(r"[\w.,+/()\[\]-]*")
#: The authorization schemes whose credentials `_BEARER` masks (any case), as the quick
#: test looks for them.
_SCHEMES = ("bearer", "basic")
_BEARER = re.compile(rf"\b({'|'.join(_SCHEMES)})\s+[A-Za-z0-9._~+/=:-]+", re.IGNORECASE)
# scheme://user: then the password, up to the last @ before the path, query or fragment.
_URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^\s:/?#@]*:)[^\s/?#]+(?=@)", re.IGNORECASE)
# The same percent-encoded (`:` is %3A, `/` %2F, `@` %40), up to the last %40 before the
# next space or `&` (the query's next parameter): encoded, the path no longer ends it.
_ENCODED_URL_PASSWORD = re.compile(
    r"(\b[a-z][a-z0-9+.-]*%3A%2F%2F(?:(?!%3A)[^\s/?#&])*?%3A)[^\s/?#&]+(?=%40)", re.IGNORECASE
)


@lru_cache(maxsize=8)
def _text_pattern(fragments: tuple[str, ...]) -> re.Pattern[str]:
    # A key (optionally quoted) that contains a fragment, written with any case and any
    # separators between its letters (privateKey, private-key, private key), `=` or `:`,
    # then a quoted value, a mask already there, or everything up to the next space,
    # comma or closing bracket.
    names = "|".join("[_. -]?".join(map(re.escape, f)) for f in fragments) or "(?!)"
    return re.compile(
        rf"""(["']?[\w-]*(?:{names})[\w-]*["']?)(\s*[:=]\s*)"""
        rf"""({re.escape(MASK)}|"[^"]*"|'[^']*'|[^\s,;&}}\]]+)""",
        re.IGNORECASE,
    )


def unmask(incoming: Any, stored: Any) -> Any:
    """`incoming` with each masked value under a secret key put back from `stored`.

    Data read through the API comes back masked; when it is edited and sent back, the mask
    must not overwrite the secret it stands for."""
    if isinstance(incoming, dict):
        old = stored if isinstance(stored, dict) else {}
        return {
            k: old[k] if v == MASK and k in old and is_secret_key(k) else unmask(v, old.get(k))
            for k, v in incoming.items()
        }
    if isinstance(incoming, list) and isinstance(stored, list) and len(incoming) == len(stored):
        return [unmask(v, s) for v, s in zip(incoming, stored, strict=True)]
    if isinstance(incoming, str) and MASK in incoming and isinstance(stored, str):
        # A URL shown with its password masked and sent back unchanged keeps the password.
        return stored if mask_url_passwords(stored) == incoming else incoming
    return incoming
