"""Does a ``submit_model.lua`` load? Checked before it is published, so a model that
job_submit.lua would refuse never replaces a working one silently.

In order: ``luac5.1 -p`` (or ``lua5.1``) when on PATH, through run_command; else lupa's Lua 5.1
when importable; else a strict Python check of the text's string literals. Always first: the
size cap and the text-only rule job_submit.lua itself applies. Runtime-safe: stdlib only."""

import re
import shutil
from pathlib import Path
from typing import Optional

from ..command import run_command
from ..errors import ModelError, SlurmCommandError

MAX_MODEL_BYTES = 8 * 1024 * 1024  # job_submit.lua's MAX_MODEL_BYTES
CHECK_TIMEOUT_S = 60
_LUA51_LOADER = ("local f, err = loadfile(arg[1]) "
                 "if not f then io.stderr:write(err) os.exit(1) end")


def check_lua_model(path: Path) -> None:
    """Raise ModelError (one line, naming the reason) unless ``path`` loads as a Lua 5.1 text
    chunk job_submit.lua would accept."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ModelError(f"cannot read {path}: {exc.strerror}", hint="rebuild the bundle") from None
    _check_basic(data, path)
    reason = _lua_reason(path, data)
    if reason:
        raise ModelError(f"{path} does not load in Lua 5.1: {_one_line(reason)}",
                         hint="not published; rebuild the bundle with this nomade version")


def _one_line(text: str) -> str:
    return " ".join(text.split())[:300]


def _check_basic(data: bytes, path: Path) -> None:
    if len(data) > MAX_MODEL_BYTES:
        raise ModelError(f"{path} is {len(data)} bytes, over job_submit.lua's {MAX_MODEL_BYTES}-byte limit",
                         hint="train with fewer rounds or less history")
    if data[:1] == b"\x1b":
        raise ModelError(f"{path} is Lua bytecode; job_submit.lua loads text only",
                         hint="publish the generated text model")


def _lua_reason(path: Path, data: bytes) -> Optional[str]:
    luac = shutil.which("luac5.1")
    lua = shutil.which("lua5.1")
    if luac:
        return _command_reason([luac, "-p", str(path)])
    if lua:  # the loader comes on stdin ("-"): the model file is compiled, never run
        return _command_reason([lua, "-", str(path)], _LUA51_LOADER)
    try:
        from lupa import lua51  # type: ignore
    except ImportError:
        return python_check(data.decode("latin-1"))
    res = lua51.LuaRuntime(encoding=None).globals().loadstring(data, b"=" + path.name.encode())
    if isinstance(res, tuple) and len(res) > 1 and res[1] is not None:  # nil, message
        return res[1].decode("utf-8", "replace")
    return None


def _command_reason(argv, input_text: Optional[str] = None) -> Optional[str]:
    try:
        run_command(argv, CHECK_TIMEOUT_S, input_text=input_text)
    except SlurmCommandError as exc:
        return (exc.stderr or "").strip() or str(exc)
    return None


_ESCAPE = re.compile(r"\\(\d{1,3}|[abfnrtv\\\"'\n])")


def python_check(text: str) -> Optional[str]:
    """The reason the text's quoted strings would not lex in Lua 5.1 (unterminated, an unknown
    escape, a decimal escape above 255), else None. Comments and long brackets are skipped."""
    i, n, line = 0, len(text), 1
    while i < n:
        c = text[i]
        if c == "\n":
            line += 1
        if text.startswith("--", i):
            i = _skip_comment(text, i + 2)
            continue
        if c == "[" and re.match(r"\[=*\[", text[i:]):
            i = _skip_long(text, i)
            continue
        if c in "\"'":
            end, reason = _string_end(text, i)
            if reason:
                return f"line {line}: {reason}"
            line += text.count("\n", i, end)
            i = end
            continue
        i += 1
    return None


def _skip_long(text: str, i: int) -> int:
    m = re.match(r"\[(=*)\[", text[i:])
    close = "]" + m.group(1) + "]"
    j = text.find(close, i + len(m.group(0)))
    return len(text) if j < 0 else j + len(close)


def _skip_comment(text: str, i: int) -> int:
    if re.match(r"\[=*\[", text[i:]):
        return _skip_long(text, i)
    j = text.find("\n", i)
    return len(text) if j < 0 else j


def _string_end(text: str, i: int):
    quote, j = text[i], i + 1
    while j < len(text):
        c = text[j]
        if c == quote:
            return j + 1, None
        if c == "\n":
            return j, "unfinished string"
        if c == "\\":
            m = _ESCAPE.match(text, j)
            if not m:
                return j, "invalid escape sequence"
            if m.group(1).isdigit() and int(m.group(1)) > 255:
                return j, "escape sequence too large"
            j = m.end()
            continue
        j += 1
    return j, "unfinished string"
