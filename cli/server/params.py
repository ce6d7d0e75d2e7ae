"""Strict request parameters: ids and counts written with digits only (no ``1_0``, no sign, no spaces),
and body text that is valid Unicode of a sane length."""
from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator

MAX_TEXT = 4096  # characters of a path in a JSON body


def _digits(value: Any) -> Any:
    if isinstance(value, str) and not re.fullmatch(r"[0-9]{1,18}", value):
        raise ValueError("must be a valid integer written with digits only (no sign, no _ or spaces)")
    return value


def _text(value: str) -> str:
    if len(value) > MAX_TEXT:
        raise ValueError(f"must be at most {MAX_TEXT} characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text (it holds a lone surrogate)") from None
    if "\0" in value:
        raise ValueError("must not hold a NUL character")
    return value


Digits = Annotated[int, BeforeValidator(_digits)]
Text = Annotated[str, AfterValidator(_text)]
