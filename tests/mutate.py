"""Hostile variants of real models, for the fuzz test and `python -m bench fuzz`: a seeded mutator
over the example and test models (tokens deleted, duplicated or swapped, characters inserted, odd
numbers, deep nesting, unicode, truncation), and one in-process run of `phg` on each variant that
says what went wrong, if anything."""
from __future__ import annotations

import contextlib
import io
import random
import re
import time
from pathlib import Path

from phg.shell.cli import main

ROOT = Path(__file__).resolve().parents[1]
SEEDS = sorted([*ROOT.glob("examples/*.phg"), *ROOT.glob("tests/models/*.phg")])

# Small models too, so that many mutants stay valid and reach the verifier quickly.
SMALL = [
    "algebra G3 = Cl(3, 0, 0)\nmodel M on G3 {\n    input x: Vector[m]\n    param R: Rotor\n"
    "    let y: Vector[m] = R >> x\n    output n: Scalar[m^2] = norm2(y)\n}\n",
    "algebra PGA = Cl(3, 0, 1)\nconst k = 2\nmodel P on PGA {\n    input p[k]: Vector\n    param W[3, k]: Scalar = 0\n"
    "    let h[3] = mix(W, p)\n    ensure grade(sum(h)) in {1}\n    loss norm2(sum(h))\n}\n"
    "train P {\n    optimizer adam(lr = 0.01)\n    batch 4\n    memory <= 4 * inference\n}\n",
    "algebra G2 = Cl(2, 0, 0)\ndef twice(a) = a + a\nmodel T on G2 {\n    input a: Vector\n    input b: Vector\n"
    "    let c = twice(a ^ b) * e12\n    output s = scalar(c)\n    ensure unit(s) == 1\n}\n",
]

ODD = ["1e999", "-0", "nan", "inf", "99999999999999999999999999", "0.0", "1e-999", "0x10", "1_000", "−1",
       "1e308", "1.", ".5", "2[m]", "e0", "e12345678", "()", "[]", "{}", "->", ">>", "~~", "#", ";", "\\",
       "\"", "'", "\t", "\r", "\r\n", "\f", "\u2028", "\u0085", "\x00", "é", "𝑥", "\ufeff", "Cl(9, 0, 0)"]

_TOKEN = re.compile(r"[A-Za-z_][A-Za-z_0-9]*|[0-9.]+(?:[eE][+-]?[0-9]+)?|>>|->|<=|==|\S")


def mutate(text: str, rng: random.Random) -> str:
    """One to three random edits of text."""
    for _ in range(rng.randint(1, 3)):
        text = rng.choice(_EDITS)(text, rng)
    return text


def _tokens(text: str) -> list[re.Match]:
    return list(_TOKEN.finditer(text)) or [re.match(r"", text)]


def _delete(text, rng):
    t = rng.choice(_tokens(text))
    return text[:t.start()] + text[t.end():]


def _duplicate(text, rng):
    t = rng.choice(_tokens(text))
    return text[:t.end()] + " " * rng.randint(0, 1) + t.group() + text[t.end():]


def _swap(text, rng):
    toks = _tokens(text)
    a, b = sorted(rng.sample(toks, 2), key=lambda m: m.start()) if len(toks) > 1 else (toks[0], toks[0])
    if a is b or a.end() > b.start():
        return text
    return text[:a.start()] + b.group() + text[a.end():b.start()] + a.group() + text[b.end():]


def _insert(text, rng):
    i = rng.randint(0, len(text))
    piece = rng.choice([rng.choice(ODD), chr(rng.randint(0, 0x2FFF)), rng.choice("()[]{},:;=+-*/^|&~.<>#\n ")])
    return text[:i] + piece + text[i:]


def _number(text, rng):
    nums = [t for t in _tokens(text) if t.group()[:1].isdigit()]
    if not nums:
        return _insert(text, rng)
    t = rng.choice(nums)
    return text[:t.start()] + rng.choice(ODD[:13]) + text[t.end():]


def _nest(text, rng):
    """A very long or deeply nested expression in place of a name or number."""
    toks = [t for t in _tokens(text) if t.group()[:1].isalnum()]
    if not toks:
        return text
    t = rng.choice(toks)
    n = rng.choice([50, 500, 6000, 20000])
    form = rng.choice(["-" * n + "{}", "(" * n + "{}" + ")" * n, " + ".join(["{}"] * min(n, 600)),
                       "~" * n + "{}", "f(" * n + "{}" + ")" * n])
    return text[:t.start()] + form.replace("{}", t.group()) + text[t.end():]


def _truncate(text, rng):
    return text[:rng.randint(0, len(text))]


def _shape(text, rng):
    """Channels on a declaration: declared, undeclared, zero or huge."""
    decl = [m for m in re.finditer(r"(input|param|let) (\w+)", text)]
    if not decl:
        return _insert(text, rng)
    m = rng.choice(decl)
    dims = rng.choice(["[n]", "[0]", "[100000]", "[10000, 10000]", "[2]", "[k]", "[1e3]", "[-1]", "[]"])
    return text[:m.end()] + dims + text[m.end():]


_EDITS = [_delete, _duplicate, _swap, _insert, _insert, _number, _nest, _truncate, _shape]


def sources() -> list[str]:
    return [p.read_text() for p in SEEDS] + SMALL


def run_case(path: Path, text: str, command: str) -> tuple[int | None, str, float, str | None]:
    """(exit status, stderr, seconds, problem): problem names what is wrong, or is None."""
    path.write_text(text, encoding="utf-8", newline="")
    err = io.StringIO()
    start = time.perf_counter()
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            status = main([command, str(path)])
    except BaseException as exc:            # main must return, never raise
        return None, err.getvalue(), time.perf_counter() - start, f"main raised {type(exc).__name__}: {exc}"
    seconds = time.perf_counter() - start
    out = err.getvalue()
    if status not in (0, 1, 2):
        return status, out, seconds, f"exit status {status}"
    if "Traceback" in out:
        return status, out, seconds, "a traceback was printed"
    if status == 2 and not re.match(re.escape(str(path)) + r":\d+:\d+: ", out):
        return status, out, seconds, "exit 2 without a located diagnostic (file:line:col)"
    return status, out, seconds, None
