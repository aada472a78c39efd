"""Text that came from outside (file names, S3 keys, error messages) made safe to show.

A campaign member names the files; a file called ``a.csv\\n\\nRésolu : rien`` or one
holding terminal escape sequences must not forge or erase lines in the admin's
terminal, an alert e-mail or a chat message. `escape_controls` shows every control
character (C0, DEL, C1), the Unicode line and paragraph separators and the
bidirectional overrides as ``\\xNN`` / ``\\uNNNN``; every other character is kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Bidirectional formatting characters: they reorder what follows on screen.
_BIDI = frozenset({0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)})
_SEPARATORS = frozenset({0x2028, 0x2029})


def _unsafe(code: int) -> bool:
    return code < 0x20 or 0x7F <= code <= 0x9F or code in _SEPARATORS or code in _BIDI


def escape_controls(text: str) -> str:
    """`text` with every control character written as an escape (``\\x0a``, ``\\u202e``)."""
    if all(not _unsafe(ord(c)) for c in text):
        return text
    out = []
    for c in text:
        code = ord(c)
        if not _unsafe(code):
            out.append(c)
        elif code <= 0xFF:
            out.append(f"\\x{code:02x}")
        else:
            out.append(f"\\u{code:04x}")
    return "".join(out)


def escape_value(value: Any) -> Any:
    """Strings escaped inside nested lists and mappings; other values unchanged."""
    if isinstance(value, str):
        return escape_controls(value)
    if isinstance(value, Mapping):
        return {escape_controls(str(k)): escape_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [escape_value(v) for v in value]
    return value
