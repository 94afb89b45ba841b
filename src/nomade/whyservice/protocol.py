"""The wire format: one JSON object per line each way.

request  {"op": "why", "job_id": "123", "cluster": ""}
response {"ok": true, "answer": {...}}  or  {"ok": false, "kind": "denied"|"not_found"|"error",
                                             "error": "...", "hint": "..."}"""

import json
from typing import Any, Dict

MAX_REQUEST = 4096


def encode(obj: Dict[str, Any]) -> bytes:
    return (json.dumps(obj, default=str) + "\n").encode()


def decode(line: bytes) -> Dict[str, Any]:
    obj = json.loads(line.decode("utf-8"))
    if not isinstance(obj, dict):
        raise ValueError("expected a JSON object")
    return obj
