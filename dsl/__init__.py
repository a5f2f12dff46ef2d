"""The language's front end: model text parsed (parser) and lowered to a Program (lower)."""
from __future__ import annotations


def loads(text: str, filename: str = "<text>"):
    """Parse and lower model text; raises PhgError, located in `filename`, when it is malformed."""
    from .lower import lower
    from .parser import parse
    return lower(parse(text, filename))
