"""The wire format: one JSON object per line each way.

request  {"op": "why" | "report" | "similar", "job_id": "123", "cluster": "", "k": 10 (similar only)}
response {"ok": true, "answer": {...}}  or  {"ok": false, "kind": KIND, "error": "...", "hint": "..."}

KIND is "denied", "not_found", "bad_request" (too large, too deeply nested, not UTF-8, not JSON,
not a why request), "timeout" (the request did not arrive within the server's deadline), "busy"
(no worker free, or too many open requests from the caller's uid: try again) or "error".

A request is checked before ``json.loads`` sees it: at most MAX_REQUEST bytes and MAX_DEPTH
levels of brackets, so no input can make the decoder recurse."""

import json
from typing import Any, Dict, Optional

from ..errors import NomadeError

MAX_REQUEST = 4096
MAX_DEPTH = 4  # a request is one flat object; a little slack for future fields
MAX_RESPONSE = 16 * 1024 * 1024  # what a client reads at most

_OPEN = frozenset(b"[{")
_CLOSE = frozenset(b"]}")
_QUOTE, _BACKSLASH = ord('"'), ord("\\")


class BadRequest(NomadeError):
    """A request the server refuses to look at; ``kind`` goes on the wire."""

    def __init__(self, kind: str, message: str, hint: Optional[str] = None):
        super().__init__(message, hint=hint)
        self.kind = kind

    def response(self) -> Dict[str, Any]:
        return error_response(self.kind, str(self), self.hint)


def error_response(kind: str, error: str, hint: Optional[str] = None) -> Dict[str, Any]:
    out: Dict[str, Any] = {"ok": False, "kind": kind, "error": error}
    if hint:
        out["hint"] = hint
    return out


def encode(obj: Dict[str, Any]) -> bytes:
    return (json.dumps(obj, default=str) + "\n").encode()


def decode(line: bytes) -> Dict[str, Any]:
    """A response line (from the trusted service) -> its object; ValueError when it is not one."""
    obj = json.loads(line.decode("utf-8"))
    if not isinstance(obj, dict):
        raise ValueError("expected a JSON object")
    return obj


def nesting_depth(data: bytes, stop_above: int = MAX_DEPTH) -> int:
    """The deepest bracket nesting in ``data`` outside JSON strings (stops counting once it
    passes ``stop_above``). Linear, no recursion: safe on any input."""
    depth = peak = 0
    in_string = escaped = False
    for byte in data:
        if in_string:
            if escaped:
                escaped = False
            elif byte == _BACKSLASH:
                escaped = True
            elif byte == _QUOTE:
                in_string = False
        elif byte == _QUOTE:
            in_string = True
        elif byte in _OPEN:
            depth += 1
            if depth > peak:
                peak = depth
                if peak > stop_above:
                    break
        elif byte in _CLOSE:
            depth -= 1
    return peak


def decode_request(line: bytes) -> Dict[str, Any]:
    """One request line -> its object, or BadRequest. Size, encoding and depth are checked first."""
    if len(line) > MAX_REQUEST:
        raise BadRequest("bad_request", f"request too large (more than {MAX_REQUEST} bytes)")
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("bad_request", "request is not UTF-8") from None
    if nesting_depth(line) > MAX_DEPTH:
        raise BadRequest("bad_request", f"request nested more than {MAX_DEPTH} levels deep")
    try:
        obj = json.loads(text)
    except ValueError:
        raise BadRequest("bad_request", "request is not JSON") from None
    if not isinstance(obj, dict):
        raise BadRequest("bad_request", "request is not a JSON object")
    return obj
