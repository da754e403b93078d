"""Reading JSON a user (or anyone who can write a file) hands us, within stated bounds.

``json.loads`` trusts its input: a deeply nested file raises ``RecursionError``,
a huge one fills memory before any check runs, and an integer of thousands of
digits trips Python's ``int`` digit limit with a bare message. Every file of
untrusted JSON (``--config``, a run's records, a saved model's layer list) is
read here instead, and each of these becomes a ``ValueError`` that names the
file and says what is wrong.
"""
from __future__ import annotations

import json
import re
from itertools import accumulate
from pathlib import Path

#: the largest file read (bytes): configs and run records are kilobytes
MAX_JSON_BYTES = 16 << 20
#: the deepest nesting of arrays/objects: our records nest a few levels
MAX_JSON_DEPTH = 64
#: the most digits of an integer (a config needs a handful; Python refuses > 4300)
MAX_INT_DIGITS = 100

_ESCAPE = re.compile(r"\\.", re.DOTALL)  # first, so that a string is then plain quote-to-quote (linear time)
_STRING = re.compile(r'"[^"]*"')
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


def json_depth(text: str) -> int:
    """How deeply arrays/objects nest in JSON ``text`` (0 for a scalar), without parsing it."""
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", _ESCAPE.sub("", text)))
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0)


def loads_bounded(text: str, source: str = "JSON", max_depth: int = MAX_JSON_DEPTH):
    """``json.loads(text)``, refusing nesting deeper than ``max_depth`` and integers of many digits.

    Raises ``ValueError`` naming ``source`` (a file name, or ``file:line``).
    """
    depth = json_depth(text)
    if depth > max_depth:
        raise ValueError(f"{source} nests arrays/objects {depth} levels deep; at most {max_depth} are read "
                         "(it is not a file this program wrote): fix or delete it.")
    try:
        return json.loads(text, parse_int=_bounded_int)
    except _LongInteger as exc:
        raise ValueError(f"{source} holds {exc}; write a number that size as a float (e.g. 1e30).") from None
    except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        raise ValueError(f"{source} is not valid JSON ({_short(exc)}); it may be torn or hand-edited: "
                         "delete it or write it again.") from None


def read_json_bounded(path: str | Path, max_bytes: int | None = None, max_depth: int | None = None):
    """The JSON in file ``path``, read only if it is at most ``max_bytes`` and nests at most ``max_depth``.

    ``None`` takes the module's ``MAX_JSON_BYTES`` (16 MiB) and ``MAX_JSON_DEPTH`` (64).

    Raises ``ValueError`` naming the file when it is too large, too deep, not
    UTF-8 or not JSON; ``OSError`` (e.g. ``FileNotFoundError``,
    ``PermissionError``) when it cannot be opened.
    """
    path = Path(path)
    max_bytes = MAX_JSON_BYTES if max_bytes is None else max_bytes
    max_depth = MAX_JSON_DEPTH if max_depth is None else max_depth
    with open(path, "rb") as stream:
        data = stream.read(max_bytes + 1)  # never more, whatever stat says (a pipe, a growing file)
    if len(data) > max_bytes:
        raise ValueError(f"{path} is larger than {_size(max_bytes)}, the most read as JSON "
                         "(it is not a file this program wrote): fix or delete it.")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path} is not UTF-8 text (byte {exc.start}); it may be torn or hand-edited: "
                         "delete it or write it again.") from None
    return loads_bounded(text, str(path), max_depth)


class _LongInteger(ValueError):
    """An integer literal of more than ``MAX_INT_DIGITS`` digits."""


def _bounded_int(digits: str) -> int:
    count = len(digits.lstrip("-"))
    if count > MAX_INT_DIGITS:
        raise _LongInteger(f"an integer of {count} digits, more than the {MAX_INT_DIGITS} read")
    return int(digits)


def _size(num_bytes: int) -> str:
    return f"{num_bytes >> 20} MiB" if num_bytes >= 1 << 20 else f"{num_bytes} bytes"


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 200 else text[:200] + "..."
