"""The SQL the store's modules write (SQLite's, with ``?`` placeholders and portable upserts) as
PostgreSQL runs it. Only nomade.store.pg uses this; on SQLite statements run as written.

Statements (``translate``), token by token, outside string literals and comments:

- ``?`` -> ``%s`` (psycopg's placeholder), every other ``%`` doubled;
- ``user`` -> ``"user"`` (a reserved word in PostgreSQL: there, bare, it is the session's role);
- ``rowid`` -> ``nomade_rowid``, a column every PostgreSQL table of a migration gets (an identity,
  in insertion order, indexed, like SQLite's rowid; rows read with ``SELECT *`` leave it out);
- ``NOT INDEXED`` / ``INDEXED BY name`` dropped; ``CROSS JOIN t ON ...`` -> ``JOIN t ON ...``; ``INSERT OR IGNORE`` -> ``... ON CONFLICT DO
  NOTHING``; ``LIKE`` -> ``ILIKE`` (SQLite's LIKE ignores ASCII case);
- ``min(a, b)`` / ``max(a, b)`` (scalar, several arguments) -> ``least`` / ``greatest``;
  ``ifnull`` -> ``coalesce``; ``instr`` -> ``strpos``; ``CAST(x AS INTEGER)`` -> ``nomade_int(x)``
  (SQLite's cast: truncation toward zero, a text's leading integer or 0; see PRELUDE);
  ``CAST(x AS REAL)`` -> ``CAST(x AS DOUBLE PRECISION)``;
- each ``ORDER BY`` term gets SQLite's NULL order: ``NULLS FIRST`` ascending, ``NULLS LAST``
  descending (PostgreSQL's default is the reverse).

Migrations (``translate_ddl``) also get PostgreSQL's types: INTEGER -> BIGINT, REAL -> DOUBLE
PRECISION, BLOB -> BYTEA, ``INTEGER PRIMARY KEY [AUTOINCREMENT]`` -> an identity column;
``WITHOUT ROWID`` and PRAGMAs dropped; index columns ordered with SQLite's NULL order (so the
translated ORDER BY can walk them). What cannot be translated (``INSERT OR REPLACE``, numbered
placeholders, triggers) raises StoreError naming the statement: write the portable form.
"""

import re
from typing import Dict, List, Optional, Tuple

from ..errors import StoreError

# SQLite-compatible helpers every PostgreSQL store has (created, or replaced, by the migrations)
PRELUDE = (
    "CREATE OR REPLACE FUNCTION nomade_int(text) RETURNS bigint LANGUAGE sql IMMUTABLE AS "
    "$$ SELECT CASE WHEN $1 IS NULL THEN NULL "
    "ELSE coalesce(substring($1 from '^\\s*([+-]?[0-9]{1,18})')::bigint, 0) END $$",
    "CREATE OR REPLACE FUNCTION nomade_int(double precision) RETURNS bigint LANGUAGE sql IMMUTABLE AS "
    "$$ SELECT trunc($1)::bigint $$",
    "CREATE OR REPLACE FUNCTION nomade_int(bigint) RETURNS bigint LANGUAGE sql IMMUTABLE AS "
    "$$ SELECT $1 $$",
    "CREATE OR REPLACE FUNCTION round(double precision, integer) RETURNS double precision "
    "LANGUAGE sql IMMUTABLE AS $$ SELECT round($1::numeric, $2)::double precision $$",
)
ROWID = "nomade_rowid"

_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<comment>--[^\n]*|/\*.*?\*/)
  | (?P<str>'(?:[^']|'')*')
  | (?P<qid>"(?:[^"]|"")*"|`[^`]*`|\[[^\]]*\])
  | (?P<cast>::)
  | (?P<param>\?\d*|[:@$][A-Za-z_]\w*)
  | (?P<word>[A-Za-z_][A-Za-z0-9_$]*)
  | (?P<num>\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)
  | (?P<op>\|\||<=|>=|<>|!=|==|<<|>>|.)
""", re.VERBOSE | re.DOTALL)

Token = Tuple[str, str]   # (kind, text)

_RENAMES = {"ifnull": "coalesce", "instr": "strpos", "like": "ILIKE"}
_TYPES = {"INTEGER": "BIGINT", "INT": "BIGINT", "BIGINT": "BIGINT", "REAL": "DOUBLE PRECISION",
          "DOUBLE": "DOUBLE PRECISION", "FLOAT": "DOUBLE PRECISION", "BLOB": "BYTEA", "TEXT": "TEXT",
          "NUMERIC": "NUMERIC", "BOOLEAN": "BIGINT"}
_ORDER_END = {"limit", "offset", "rows", "range", "groups", "fetch", "for", "union", "except",
              "intersect", "on", "returning", "window"}
_CONSTRAINT_WORDS = {"constraint", "primary", "unique", "check", "foreign"}

_cache: Dict[str, str] = {}


def tokenize(sql: str) -> List[Token]:
    out: List[Token] = []
    pos = 0
    while pos < len(sql):
        m = _TOKEN.match(sql, pos)
        if m is None or m.end() == pos:   # an unterminated literal: keep the rest as is
            out.append(("op", sql[pos:]))
            break
        out.append((m.lastgroup or "op", m.group()))
        pos = m.end()
    return out


def _fail(sql: str, why: str) -> StoreError:
    one = " ".join(sql.split())
    return StoreError(f"statement not runnable on PostgreSQL ({why}): {one[:160]}",
                      hint="write the portable form (see nomade.store.dialect)")


def translate(sql: str) -> str:
    """``sql`` (one statement, SQLite dialect, ``?`` placeholders) for psycopg on PostgreSQL."""
    done = _cache.get(sql)
    if done is None:
        done = "".join(t for _, t in _translate_tokens(tokenize(sql), sql))
        if len(_cache) < 4096:
            _cache[sql] = done
    return done


def _translate_tokens(toks: List[Token], sql: str) -> List[Token]:
    words = [(i, t.lower()) for i, (k, t) in enumerate(toks) if k == "word"]
    lowered = [w for _, w in words]
    ignore = False
    if lowered[:1] == ["replace"]:
        raise _fail(sql, "REPLACE INTO")
    if lowered[:2] == ["insert", "or"] and len(lowered) > 2:
        if lowered[2] != "ignore":
            raise _fail(sql, f"INSERT OR {lowered[2].upper()}")
        ignore = "conflict" not in lowered
        drop = {words[1][0], words[2][0]}
        # the space after each dropped word goes too
        drop |= {i + 1 for i in drop if i + 1 < len(toks) and toks[i + 1][0] == "ws"}
        toks = [tok for i, tok in enumerate(toks) if i not in drop]
    toks = _drop_indexed(toks)
    toks = _cross_join_on(toks)
    toks = _casts(toks)
    toks = _scalar_minmax(toks)
    toks = _order_nulls(toks)
    out: List[Token] = []
    for kind, text in toks:
        if kind == "param":
            if text != "?":
                raise _fail(sql, f"placeholder {text}")
            out.append(("param", "%s"))
            continue
        if kind in ("str", "qid", "comment", "op"):
            if kind == "qid" and text[0] in "`[":
                text = '"' + text[1:-1] + '"'
            out.append((kind, text.replace("%", "%%")))
            continue
        if kind == "word":
            low = text.lower()
            if low == "user":
                text = '"user"'
            elif low == "rowid":
                text = ROWID
            elif low in _RENAMES:
                text = _RENAMES[low]
            elif low == "glob":
                raise _fail(sql, "GLOB")
        out.append((kind, text))
    if ignore:
        while out and (out[-1][0] in ("ws", "comment") or out[-1][1] == ";"):
            out.pop()
        out.append(("word", " ON CONFLICT DO NOTHING"))
    return out


def _next_word(toks: List[Token], i: int) -> int:
    """Index of the first non-space token after ``i`` (len(toks) if none)."""
    j = i + 1
    while j < len(toks) and toks[j][0] in ("ws", "comment"):
        j += 1
    return j


def _is(toks: List[Token], i: int, word: str) -> bool:
    return i < len(toks) and toks[i][0] == "word" and toks[i][1].lower() == word


def _drop_indexed(toks: List[Token]) -> List[Token]:
    out: List[Token] = []
    i = 0
    while i < len(toks):
        if _is(toks, i, "not") and _is(toks, _next_word(toks, i), "indexed"):
            i = _next_word(toks, i) + 1
            continue
        if _is(toks, i, "indexed") and _is(toks, _next_word(toks, i), "by"):
            i = _next_word(toks, _next_word(toks, i)) + 1
            continue
        out.append(toks[i])
        i += 1
    return out


_JOIN_CLAUSE_END = {"join", "where", "group", "order", "limit", "union", "having", "window"}


def _cross_join_on(toks: List[Token]) -> List[Token]:
    """SQLite's ``CROSS JOIN t ON cond`` (a join order hint) -> ``JOIN t ON cond``."""
    toks = list(toks)
    for i in range(len(toks)):
        if not (_is(toks, i, "cross") and _is(toks, _next_word(toks, i), "join")):
            continue
        depth = 0
        for j in range(_next_word(toks, i) + 1, len(toks)):
            kind, text = toks[j]
            if kind == "op" and text == "(":
                depth += 1
            elif kind == "op" and text == ")":
                depth -= 1
                if depth < 0:
                    break
            elif depth == 0 and kind == "word" and text.lower() in _JOIN_CLAUSE_END | {"on", "using"}:
                if text.lower() in ("on", "using"):
                    toks[i] = ("ws", "")
                    if toks[i + 1][0] == "ws":
                        toks[i + 1] = ("ws", "")
                break
    return toks


def _close_of(toks: List[Token], open_at: int) -> int:
    depth = 0
    for j in range(open_at, len(toks)):
        if toks[j][1] == "(" and toks[j][0] == "op":
            depth += 1
        elif toks[j][1] == ")" and toks[j][0] == "op":
            depth -= 1
            if depth == 0:
                return j
    return len(toks) - 1


def _casts(toks: List[Token]) -> List[Token]:
    """CAST(x AS INTEGER) -> nomade_int(x); CAST(x AS REAL) -> CAST(x AS DOUBLE PRECISION)."""
    i = 0
    toks = list(toks)
    while i < len(toks):
        if _is(toks, i, "cast"):
            op = _next_word(toks, i)
            if op < len(toks) and toks[op][1] == "(":
                close = _close_of(toks, op)
                k = close - 1
                while k > op and toks[k][0] in ("ws", "comment"):
                    k -= 1
                typ = toks[k][1].upper() if toks[k][0] == "word" else ""
                a = k - 1
                while a > op and toks[a][0] in ("ws", "comment"):
                    a -= 1
                if _is(toks, a, "as") and typ in ("INTEGER", "INT", "BIGINT"):
                    toks[i] = ("word", "nomade_int")
                    del toks[a:close]
                elif _is(toks, a, "as") and typ in ("REAL", "FLOAT", "DOUBLE"):
                    toks[k] = ("word", "DOUBLE PRECISION")
        i += 1
    return toks


def _scalar_minmax(toks: List[Token]) -> List[Token]:
    toks = list(toks)
    for i, (kind, text) in enumerate(toks):
        if kind != "word" or text.lower() not in ("min", "max"):
            continue
        op = _next_word(toks, i)
        if op >= len(toks) or toks[op][1] != "(":
            continue
        close = _close_of(toks, op)
        depth, commas = 0, 0
        for j in range(op, close):
            if toks[j][0] == "op" and toks[j][1] == "(":
                depth += 1
            elif toks[j][0] == "op" and toks[j][1] == ")":
                depth -= 1
            elif depth == 1 and toks[j][1] == ",":
                commas += 1
        if commas:
            toks[i] = ("word", "least" if text.lower() == "min" else "greatest")
    return toks


def _order_nulls(toks: List[Token]) -> List[Token]:
    """After each ORDER BY term: NULLS FIRST (ascending) or NULLS LAST (descending)."""
    out: List[Token] = []
    stack: List[Optional[dict]] = [None]    # per paren depth: the open ORDER BY's state
    i = 0

    def end_term(state: dict) -> None:
        if state["words"] and not state["nulls"]:
            at = len(out)
            while at and out[at - 1][0] in ("ws", "comment"):
                at -= 1
            out.insert(at, ("word", " NULLS LAST" if state["last"] == "desc" else " NULLS FIRST"))
        state.update(words=0, nulls=False, last="")

    while i < len(toks):
        kind, text = toks[i]
        low = text.lower() if kind == "word" else ""
        state = stack[-1]
        if kind == "op" and text == "(":
            out.append(toks[i])
            stack.append(None)
            if state is not None:
                state["words"] += 1
            i += 1
            continue
        if kind == "op" and text == ")":
            if state is not None:
                end_term(state)
            if len(stack) > 1:
                stack.pop()
            out.append(toks[i])
            i += 1
            continue
        if low == "order" and _is(toks, _next_word(toks, i), "by"):
            j = _next_word(toks, i)
            out.extend(toks[i:j + 1])
            stack[-1] = {"words": 0, "nulls": False, "last": ""}
            i = j + 1
            continue
        if state is not None:
            if (kind == "op" and text in (",", ";")) or low in _ORDER_END:
                end_term(state)
                if text != ",":
                    stack[-1] = None
            elif kind not in ("ws", "comment"):
                state["words"] += 1
                state["nulls"] = state["nulls"] or low == "nulls"
                state["last"] = low
        out.append(toks[i])
        i += 1
    if stack[-1] is not None:
        end_term(stack[-1])
    return out


# ------------------------------------------------------------------ migrations

def translate_ddl(sql: str) -> Optional[str]:
    """One migration statement for PostgreSQL (None: nothing to run there, a PRAGMA)."""
    toks = tokenize(sql)
    words = [t.lower() for k, t in toks if k == "word"]
    if not words or words[0] == "pragma":
        return None
    if words[0] == "create" and "trigger" in words[:4]:
        raise _fail(sql, "CREATE TRIGGER; give a NNNN_name.postgres.sql")
    if words[:2] == ["create", "table"]:
        toks = _create_table(toks, sql)
    elif words[:2] == ["alter", "table"] and "add" in words:
        toks = _add_column(toks)
    elif words[0] == "create" and "index" in words[:3]:
        toks = _index_nulls(toks)
    out = _translate_tokens(toks, sql)
    return "".join(t for _, t in out).replace("%%", "%")


def _map_type(toks: List[Token], i: int) -> None:
    if i < len(toks) and toks[i][0] == "word" and toks[i][1].upper() in _TYPES:
        toks[i] = ("word", _TYPES[toks[i][1].upper()])


def _create_table(toks: List[Token], sql: str) -> List[Token]:
    toks = list(toks)
    op = next((i for i, t in enumerate(toks) if t == ("op", "(")), None)
    if op is None:                       # CREATE TABLE ... AS SELECT
        return toks
    close = _close_of(toks, op)
    tail = [t[1].lower() for t in toks[close + 1:] if t[0] == "word"]
    rowid_table = tail[:2] != ["without", "rowid"]
    # the elements between the parentheses, at depth 1
    starts, depth = [op + 1], 0
    for j in range(op, close):
        if toks[j] == ("op", "("):
            depth += 1
        elif toks[j] == ("op", ")"):
            depth -= 1
        elif depth == 1 and toks[j] == ("op", ","):
            starts.append(j + 1)
    for s in reversed(starts):
        name = s if toks[s][0] in ("word", "qid") else _next_word(toks, s - 1)
        if toks[name][0] == "word" and toks[name][1].lower() in _CONSTRAINT_WORDS:
            continue
        typ = _next_word(toks, name)
        end = min([e for e in starts if e > s] + [close + 1]) - 1
        element = [t[1].lower() for t in toks[typ:end] if t[0] == "word"]
        if element[:1] == ["integer"] and element[1:3] == ["primary", "key"]:
            toks[typ] = ("word", "BIGINT GENERATED BY DEFAULT AS IDENTITY")
            for j in range(typ, end):
                if _is(toks, j, "autoincrement"):
                    toks[j] = ("ws", "")
        else:
            _map_type(toks, typ)
    if rowid_table:
        toks.insert(close, ("word", f",\n    {ROWID} BIGINT GENERATED BY DEFAULT AS IDENTITY UNIQUE"))
    else:
        drop = [i for i in range(close + 1, len(toks)) if _is(toks, i, "without") or _is(toks, i, "rowid")]
        toks = [t for i, t in enumerate(toks) if i not in drop]
    return toks


def _add_column(toks: List[Token]) -> List[Token]:
    toks = list(toks)
    for i in range(len(toks)):
        if _is(toks, i, "add"):
            name = _next_word(toks, i)
            if _is(toks, name, "column"):
                name = _next_word(toks, name)
            _map_type(toks, _next_word(toks, name))
            break
    return toks


def _index_nulls(toks: List[Token]) -> List[Token]:
    """Index columns in SQLite's NULL order (NULLS FIRST ascending)."""
    op = next((i for i, t in enumerate(toks) if t == ("op", "(")), None)
    if op is None:
        return toks
    close = _close_of(toks, op)
    inner = [("word", "ORDER"), ("ws", " "), ("word", "BY"), ("ws", " ")] + list(toks[op + 1:close])
    done = _order_nulls(inner)[4:]
    return list(toks[:op + 1]) + done + list(toks[close:])
