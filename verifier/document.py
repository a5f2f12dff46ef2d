"""Reading a certificate someone else wrote: strict JSON, bounded in size, and typed field by field.

A certificate is untrusted input.  Before anything looks at its values, the document must be one
JSON object in UTF-8 of at most MAX_BYTES, with no key twice in an object (two parsers could
read the same text differently), no NaN or Infinity, and every field of the type the format
gives it.  A failure is a DocumentError naming the place (line:col in the text, or the field's
JSON path), what was expected and what was found -- never the value itself beyond a short type
name, since a certificate can be made to point anywhere.
"""
from __future__ import annotations

import json
import json.decoder
import json.scanner
from pathlib import Path

FORMAT = "phg-certificate/1"
# The largest certificate `phg verify` reads; an honest one of a large model is well under 1 MiB.
MAX_BYTES = 16 * 2**20
# The deepest nesting read (an honest certificate nests about 10 deep: derivations, counterexamples).
MAX_DEPTH = 64


class DocumentError(ValueError):
    """A certificate that cannot be read: `where` (a path with line:col, or a JSON path), what was
    expected, and what was found."""

    def __init__(self, where: str, expected: str, found: str):
        super().__init__(f"{where}: expected {expected}, found {found}")
        self.where, self.expected, self.found = where, expected, found


def read(path: str | Path) -> dict:
    """The certificate at `path`, checked to be well formed (typed by `check_types`)."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_BYTES + 1)
    except OSError as exc:
        raise DocumentError(str(path), "a readable certificate", exc.strerror or type(exc).__name__) from None
    if len(data) > MAX_BYTES:
        raise DocumentError(str(path), f"a certificate of at most {MAX_BYTES // 2**20} MiB", "a larger file")
    doc = parse(data, str(path))
    if doc.get("format") != FORMAT:
        found = doc.get("format")
        raise DocumentError(_field(str(path), "format"), f"{FORMAT!r}",
                            repr(found[:40]) if isinstance(found, str) else _kind(found) if "format" in doc
                            else "no such field")
    check_types(doc, str(path))
    recorded = doc["source"]["path"]
    if "\0" in recorded:                    # no file has such a name; the system refuses to look it up
        raise DocumentError(_field(str(path), "source.path"), "a file path without NUL characters",
                            f"a NUL at character {recorded.index(chr(0)) + 1}")
    return doc


def parse(data: bytes, name: str) -> dict:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = data[:exc.start].decode("utf-8")
        line, col = _position(before, len(before))
        raise DocumentError(f"{name}:{line}:{col}", "UTF-8 text", f"the byte 0x{data[exc.start]:02x}") from None
    decoder = _StrictDecoder(text, name)
    try:
        doc = decoder.decode(text)
    except DocumentError:
        raise
    except json.JSONDecodeError as exc:
        where = f"{name}:{exc.lineno}:{exc.colno}"
        if exc.msg.startswith("Expecting "):
            at = "the end of the text" if exc.pos >= len(text) else repr(text[exc.pos])
            raise DocumentError(where, exc.msg.removeprefix("Expecting "), at) from None
        raise DocumentError(where, "JSON", exc.msg[0].lower() + exc.msg[1:]) from None
    except ValueError as exc:               # e.g. an integer of more digits than Python converts
        raise DocumentError(name, "JSON numbers of ordinary size", str(exc).split(";")[0].lower()) from None
    except RecursionError:
        raise DocumentError(name, f"JSON nested at most {MAX_DEPTH} deep", "deeper nesting") from None
    if not isinstance(doc, dict):
        raise DocumentError(f"{name}:1:1", "a JSON object", _kind(doc))
    problem = _unpaired_surrogate(doc, "")
    if problem is not None:
        raise DocumentError(_field(name, problem), "text that is valid Unicode",
                            "an unpaired surrogate escape (\\ud800-\\udfff)")
    return doc


def _unpaired_surrogate(value, path: str) -> str | None:
    """The JSON path of the first string (or key) with a lone surrogate, which no UTF-8 output can
    carry; None if there is none."""
    if isinstance(value, str):
        return None if _encodable(value) else path
    if isinstance(value, list):
        items = ((f"{path}[{i}]", item) for i, item in enumerate(value))
    elif isinstance(value, dict):
        items = ((join(path, key) if _encodable(key) else path, item, key) for key, item in value.items())
        for where, item, key in items:
            found = where if not _encodable(key) else _unpaired_surrogate(item, where)
            if found is not None:
                return found
        return None
    else:
        return None
    for where, item in items:
        found = _unpaired_surrogate(item, where)
        if found is not None:
            return found
    return None


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _position(text: str, index: int) -> tuple[int, int]:
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


class _StrictDecoder(json.JSONDecoder):
    """json's own pure-Python scanner, with objects parsed by a wrapper that knows where each
    object starts: duplicate keys and excess depth are refused at their place."""

    def __init__(self, text: str, name: str):
        super().__init__(parse_constant=self._constant)
        self.text, self.name, self.depth = text, name, 0
        self.parse_object = self._object
        self.parse_array = self._array
        self.scan_once = json.scanner.py_make_scanner(self)

    def _where(self, index: int) -> str:
        line, col = _position(self.text, index)
        return f"{self.name}:{line}:{col}"

    def _nested(self, start: int):
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise DocumentError(self._where(start), f"JSON nested at most {MAX_DEPTH} deep", "deeper nesting")

    def _object(self, s_and_end, strict, scan_once, object_hook, object_pairs_hook, memo=None, _w=None):
        start = s_and_end[1] - 1
        self._nested(start)
        pairs, end = json.decoder.JSONObject(s_and_end, strict, scan_once, None, list, memo)
        self.depth -= 1
        out: dict = {}
        for key, value in pairs:
            if key in out:
                raise DocumentError(self._where(start), "each key once in a JSON object",
                                    f"the key {_short(key)} twice in the object that starts here")
            out[key] = value
        return out, end

    def _array(self, s_and_end, scan_once, _w=None):
        self._nested(s_and_end[1] - 1)
        out = json.decoder.JSONArray(s_and_end, scan_once)
        self.depth -= 1
        return out

    def _constant(self, name: str):
        raise DocumentError(self.name, "finite JSON numbers", name)


def _short(key: str) -> str:
    return repr(key) if len(key) <= 40 else repr(key[:40]) + "..."


def _kind(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


# ---- the format's types ---------------------------------------------------------------------------
# A schema is a Python type (str, int, bool: a JSON leaf of that type, booleans never counting as
# integers), None (null), JSON (any JSON value: free-form evidence), a tuple (one of its schemas,
# told apart by the value's JSON kind), a dict (an object with exactly those keys, a key ending in
# "?" optional), [S] (an array of S), Map(S) (an object of any keys, each value S), or
# Keyed(K, A, B) (an object that is A when it has the key K and a field that is not an object, else
# B, whose values are all objects: a key K in B -- a model named like A's field -- misleads nothing).
JSON = object()


class Map:
    def __init__(self, schema):
        self.schema = schema


class Keyed:
    def __init__(self, key: str, with_key, without_key):
        self.key, self.with_key, self.without_key = key, with_key, without_key


SPAN = {"line": int, "col": int, "end_line?": int, "end_col?": int}
OBLIGATION = {"id": str, "kind": str, "model": str, "subject": str, "span": SPAN, "claim": str,
              "status": str, "evidence": Map(JSON), "smt2": (str, None)}
VALUE = {"blades": [str], "grades": [int], "unit": (str, None), "unit_written": bool, "versor": bool,
         "shape": [int], "role": str, "coefficient_units?": Map(str), "numeric?": str}
PLAN = {"inference_bytes": str, "training_bytes": str, "threads": int, "inference_bytes_per_thread": int,
        "training_bytes_per_thread": int, "conversion_bytes_per_sample": int, "optimizer_bytes": int,
        "per_sample_stack_bytes": int, "training_buffers": Map(int), "inference_buffers": Map(str), "slots": int,
        "accumulate": str, "note": str}
SIGNATURE = {"algorithm": str, "key_id": str, "public_key": str, "value": str}
CERTIFICATE = {"format": str, "source": {"path": str, "sha256": str}, "tool": {"phg": str, "z3": str},
               "ok": bool, "scope": str, "obligations": [OBLIGATION], "values": Map(VALUE),
               "memory": (None, Keyed("training_bytes", PLAN, Map(PLAN))), "signature": SIGNATURE}


def check_types(doc: dict, name: str, schema=CERTIFICATE):
    """Raise a DocumentError at the first field whose JSON type is not the format's."""
    problem = _mismatch(doc, schema, "")
    if problem:
        where, expected, found = problem
        raise DocumentError(_field(name, where), expected, found)


def _field(name: str, path: str) -> str:
    return f"{name}: field {path}" if path else name


def _mismatch(value, schema, path: str):
    """None if value fits schema, else (JSON path, expected, found) of the first field that does not."""
    if schema is JSON:
        return None
    if schema is None:
        return None if value is None else (path, "null", _kind(value))
    if isinstance(schema, tuple):
        for alternative in schema:
            if _describe(alternative) == _kind(value):
                return _mismatch(value, alternative, path)
        return path, _describe(schema), _kind(value)
    if isinstance(schema, Keyed):
        if not isinstance(value, dict):
            return path, "an object", _kind(value)
        flat = schema.key in value and not all(isinstance(v, dict) for v in value.values())
        return _mismatch(value, schema.with_key if flat else schema.without_key, path)
    if isinstance(schema, type):
        ok = isinstance(value, schema) and not (schema is int and isinstance(value, bool))
        return None if ok else (path, _describe(schema), _kind(value))
    if isinstance(schema, list):
        if not isinstance(value, list):
            return path, "an array", _kind(value)
        for i, item in enumerate(value):
            problem = _mismatch(item, schema[0], f"{path}[{i}]")
            if problem:
                return problem
        return None
    if not isinstance(value, dict):
        return path, "an object", _kind(value)
    if isinstance(schema, Map):
        for key, item in value.items():
            problem = _mismatch(item, schema.schema, join(path, key))
            if problem:
                return problem
        return None
    fields = {k.rstrip("?"): (s, k.endswith("?")) for k, s in schema.items()}
    for key in value:
        if key not in fields:
            return join(path, key), f"only the fields {', '.join(fields)}", "another field"
    for key, (sub, optional) in fields.items():
        if key not in value:
            if optional:
                continue
            return join(path, key), _describe(sub), "no such field"
        problem = _mismatch(value[key], sub, join(path, key))
        if problem:
            return problem
    return None


def _describe(schema) -> str:
    if schema is None:
        return "null"
    if isinstance(schema, tuple):
        return " or ".join(_describe(s) for s in schema)
    if isinstance(schema, type):
        return {str: "a string", int: "an integer", bool: "a boolean"}[schema]
    if isinstance(schema, list):
        return "an array"
    return "an object"


def join(path: str, key: str) -> str:
    """A JSON path: dotted names, or ["..."] for a key that is not a plain name."""
    plain = key.replace("_", "a").replace("-", "a").isalnum() and key.isascii()
    part = f".{key}" if plain else f"[{json.dumps(key[:40])}]"
    return (path + part).lstrip(".") if plain else path + part
