"""Compile the submit-time GBDT + history tables + calibration into plain Lua 5.1
(``submit_model.lua``), following the contract in docs/architecture.md.

The Lua chunk mirrors nomade.scoring.lite_features (features from ``req``) and
nomade.scoring.trees (tree walk + path contributions) and nomade.scoring.calibration (the
piecewise-linear map); tests/unit/test_lua_parity.py holds Python and Lua within 1e-6.
Trees are emitted as nested if/else functions (one per tree) that also add each split's
contribution to ``c[feature]``: unknown values are ``nil`` in Lua (NaN in Python).

The history tables are keyed by a keyed hash of the user and of ``user .. "\\031" .. name``
(``KeyHash``: two polynomial hashes modulo primes below 2^26 with secret random multipliers and
seeds, exact in Lua 5.1 doubles), never by the names themselves: a copy of the file shows no
user's job names. Every string literal escapes each byte outside printable ASCII as a
three-digit ``\\ddd`` so any byte string round-trips.
"""

import math
import re
import secrets
from dataclasses import dataclass
from typing import Any, List, Mapping, Optional

from ..risk_scale import CUTOFFS
from ..scoring.calibration import CalibrationMap
from ..scoring.lite_features import HISTORY, SITE_INDEPENDENT, LiteHistory

LUA_FORMAT = 1
TABLE_BLOCK = 5000
TREE_BLOCK = 25   # trees per risk function (TB): their features are read into locals once


def lua_num(v: float) -> str:
    if v != v:
        return "nil"
    if math.isinf(v):
        return "math.huge" if v > 0 else "-math.huge"
    r = repr(float(v))
    return r


def key_bytes(s: str) -> bytes:
    """The bytes Slurm hands job_submit.lua for ``s``: UTF-8; names read from undecodable bytes
    (surrogateescape) get those bytes back; other lone surrogates pass as-is."""
    try:
        return s.encode("utf-8")
    except UnicodeEncodeError:
        pass
    try:
        return s.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return s.encode("utf-8", "surrogatepass")


def lua_bytes(b: bytes) -> str:
    """A Lua string literal for any byte string: printable ASCII as is, every other byte (and
    the quote and backslash) as a three-digit ``\\ddd``, so a digit after an escape can never
    extend it."""
    out = []
    for o in b:
        if 32 <= o < 127 and o not in (34, 92):
            out.append(chr(o))
        else:
            out.append("\\%03d" % o)
    return '"' + "".join(out) + '"'


def lua_str(s: str) -> str:
    return lua_bytes(key_bytes(s))


HASH_PRIMES = (67108859, 67108837)  # the two largest primes below 2^26


@dataclass(frozen=True)
class KeyHash:
    """Keyed hash of a history key, the same in Python and in plain Lua 5.1 arithmetic: per
    byte b, h = (h * a + b + 1) mod p for two (a, p), starting from a secret seed; the key is
    h1 * p2 + h2 (< 2^52: every step is exact in doubles). The multipliers and seeds are drawn
    anew for every compiled model."""

    a1: int
    s1: int
    a2: int
    s2: int

    @classmethod
    def random(cls) -> "KeyHash":
        p1, p2 = HASH_PRIMES
        return cls(2 + secrets.randbelow(p1 - 3), secrets.randbelow(p1),
                   2 + secrets.randbelow(p2 - 3), secrets.randbelow(p2))

    def of(self, key: str) -> int:
        p1, p2 = HASH_PRIMES
        h1, h2 = self.s1, self.s2
        for b in key_bytes(key):
            h1 = (h1 * self.a1 + b + 1) % p1
            h2 = (h2 * self.a2 + b + 1) % p2
        return h1 * p2 + h2

    def lua(self) -> List[str]:
        p1, p2 = HASH_PRIMES
        return [f"local HA1, HS1, HP1 = {self.a1}, {self.s1}, {p1}",
                f"local HA2, HS2, HP2 = {self.a2}, {self.s2}, {p2}"]


def _safe_comment(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._:+-]", "?", text)


def _tree_lua(t: Mapping[str, list], out: List[str], ind: str, i: int, contrib: bool,
              local: bool = False) -> None:
    """One tree as nested if/else. ``local``: features are the locals x1..xNF and a leaf adds
    its value to ``r`` (the block form of the risk path); else a leaf returns its value."""
    f = t["feature"][i]
    if f < 0:
        out.append(f"{ind}r = r + {lua_num(t['value'][i])}" if local else
                   f"{ind}return {lua_num(t['value'][i])}")
        return
    fx = f"x{f + 1}" if local else f"x[{f + 1}]"
    thr = lua_num(t["threshold"][i])
    if t["nan_to_zero"][i]:
        cond = f"({fx} or 0) <= {thr}"
    elif t["default_left"][i]:
        cond = f"{fx} == nil or {fx} <= {thr}"
    else:
        cond = f"{fx} ~= nil and {fx} <= {thr}"
    le, ri = t["left"][i], t["right"][i]
    out.append(f"{ind}if {cond} then")
    if contrib:
        out.append(f"{ind}  c[{f + 1}] = c[{f + 1}] + {lua_num(t['value'][le] - t['value'][i])}")
    _tree_lua(t, out, ind + "  ", le, contrib, local)
    out.append(f"{ind}else")
    if contrib:
        out.append(f"{ind}  c[{f + 1}] = c[{f + 1}] + {lua_num(t['value'][ri] - t['value'][i])}")
    _tree_lua(t, out, ind + "  ", ri, contrib, local)
    out.append(f"{ind}end")


def _agg_lua(a) -> str:
    p90 = a.p90()
    return "{%d,%d,%d,%d,%s}" % (a.n, a.fails, a.last, a.streak, "false" if p90 != p90 else lua_num(p90))


_FEATURES_LUA = r"""
local function request_features(req, x)
  local cpus = req.cpus
  local nodes = req.nodes or 1
  local mem = req.mem_mb
  local mem_total, mem_pc = nil, nil
  if mem ~= nil then
    if req.mem_per_cpu then
      if cpus ~= nil then mem_total = mem * cpus end
      mem_pc = mem
    else
      mem_total = mem * nodes
      if cpus ~= nil and cpus > 0 then mem_pc = mem_total / cpus end
    end
  end
  local cpn = nil
  if cpus ~= nil and nodes > 0 then cpn = cpus / nodes end
  local t = req.submit_time or 0
  x[1] = cpus; x[2] = nodes; x[3] = req.gpus; x[4] = mem_total; x[5] = req.timelimit_s
  x[6] = cpn; x[7] = mem_pc; x[8] = floor(t / 3600) % 24; x[9] = (floor(t / 86400) + 3) % 7
end

local byte = string.byte
local function hkey(s)
  local h1, h2 = HS1, HS2
  for i = 1, #s do
    local b = byte(s, i) + 1
    h1 = (h1 * HA1 + b) % HP1
    h2 = (h2 * HA2 + b) % HP2
  end
  return h1 * HP2 + h2
end

-- the history rows of this request's user and (user, name); nil when unknown
local function history_rows(req)
  local user = req.user or ""
  return U[hkey(user)], N[hkey(user .. "\031" .. (req.name or ""))]
end

local EMPTY = {0, 0, -1, 0, false}
local function agg(a, x, i)
  if a[1] == 0 then
    x[i] = 0; x[i + 1] = nil; x[i + 2] = nil; x[i + 3] = 0
  else
    x[i] = a[1]; x[i + 1] = a[2] / a[1]; x[i + 2] = a[3]; x[i + 3] = a[4]
  end
end

local function history_features(req, x, u, k)
  u = u or EMPTY
  k = k or EMPTY
  x[10] = req.recent_submits
  agg(u, x, 11)
  local up90 = u[5] or nil
  x[15] = up90
  agg(k, x, 16)
  local ref = k[5] or up90
  local tl = x[5]
  if tl ~= nil and ref ~= nil and ref > 0 then x[20] = tl / ref else x[20] = nil end
end
"""

_PREDICT_LUA = r"""
local function calibrate(p)
  local xs, ys = CAL_X, CAL_Y
  local n = #xs
  if p <= xs[1] then return ys[1] end
  if p >= xs[n] then return ys[n] end
  local lo, hi = 1, n
  while hi - lo > 1 do
    local mid = floor((lo + hi) / 2)
    if xs[mid] <= p then lo = mid else hi = mid end
  end
  local x0, x1, y0, y1 = xs[lo], xs[hi], ys[lo], ys[hi]
  if x1 == x0 then return y1 end
  return y0 + (y1 - y0) * (p - x0) / (x1 - x0)
end

local function hms(s)
  s = math.ceil(s / 300) * 300
  return string.format("%02d:%02d:00", floor(s / 3600), floor(s % 3600 / 60))
end

local function human(s)
  s = floor(s + 0.5)
  if s >= 3600 then return string.format("%dh%02dm", floor(s / 3600), floor(s % 3600 / 60)) end
  return string.format("%dm", floor(s / 60))
end

local WEEKDAYS = {"Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"}

-- feature f (its value v, all features x) in words, or nil; tests/unit/test_messages.py holds
-- the sentences and nomade.scoring.lua_verdict.lua_reason is the same function in Python
local function reason(f, v, x)
  if f == 19 or f == 14 then
    if v >= 2 then return string.format("your last %d jobs%s failed", floor(v), f == 19 and " with this name" or "") end
  elseif f == 17 or f == 12 then
    local n = x[f == 17 and 16 or 11] or 0
    return string.format("%d%% of your past jobs%s failed (%d of %d)", floor(v * 100 + 0.5),
                         f == 17 and " with this name" or "", floor(v * n + 0.5), floor(n))
  elseif f == 18 or f == 13 then
    if v == 1 then return "your previous job" .. (f == 18 and " with this name" or "") .. " failed" end
  elseif f == 20 then
    -- only the way the --time suggestion points: a limit shorter than what similar jobs needed
    local tl = x[5]
    if v > 0 and v < 1 and tl ~= nil then
      return "time limit of " .. human(tl) .. ", shorter than the " .. human(tl / v) .. " your similar jobs needed"
    end
  elseif f == 15 then return "your successful jobs ran up to " .. human(v)
  elseif f == 5 then return "time limit of " .. human(v)
  elseif f == 4 then return string.format("memory request of %.1f GiB", v / 1024)
  elseif f == 7 then return string.format("%.1f GiB of memory per CPU", v / 1024)
  elseif f == 1 then return string.format("%d CPUs requested", floor(v))
  elseif f == 2 then return string.format("%d nodes requested", floor(v))
  elseif f == 6 then return string.format("%d CPUs per node", floor(v))
  elseif f == 3 then
    if v >= 1 then return string.format("%d GPUs requested", floor(v)) end
    return "no GPUs requested"
  elseif f == 10 then
    if v >= 3 then return string.format("%d submissions in the last hour", floor(v)) end
  elseif f == 11 or f == 16 then
    if v < 5 then return "little history for this " .. (f == 16 and "job name" or "user") end
  elseif f == 8 then return string.format("submitted at %02d:00 UTC", floor(v))
  elseif f == 9 then return "submitted on a " .. WEEKDAYS[floor(v) % 7 + 1]
  end
  return nil
end

-- reasons of one family say the same thing in other words: at most one of each is shown.
-- TWIN: a user-level reason gives way to its job-name twin (more specific) when that one also
-- raises the risk and has words.
local FAMILY = {[11] = 1, [12] = 1, [13] = 1, [14] = 1, [16] = 1, [17] = 1, [18] = 1, [19] = 1,
                [5] = 2, [15] = 2, [20] = 2, [4] = 3, [7] = 3, [1] = 4, [2] = 4, [6] = 4, [8] = 5, [9] = 5}
local TWIN = {[11] = 16, [12] = 17, [13] = 18, [14] = 19}

local function reasons_of(x, c)
  local reasons = {}
  local order = {}
  for i = 1, NF do if c[i] > 0 and x[i] ~= nil then order[#order + 1] = i end end
  table.sort(order, function(a, b) return c[a] > c[b] end)
  local used = {}
  for _, i in ipairs(order) do
    local fam = FAMILY[i]
    if fam == nil or not used[fam] then
      local s = nil
      local t = TWIN[i]
      if t ~= nil and c[t] > 0 and x[t] ~= nil then s = reason(t, x[t], x) end
      if s == nil then s = reason(i, x[i], x) end
      if s ~= nil then
        reasons[#reasons + 1] = s
        if fam ~= nil then used[fam] = true end
      end
    end
    if #reasons >= 3 then break end
  end
  return reasons
end

-- x, and the history rows of the user and of (user, name) (nil when unknown)
local function features_rows(req)
  local x = {}
  request_features(req, x)
  local u, k = nil, nil
  if WITH_HISTORY then
    u, k = history_rows(req)
    history_features(req, x, u, k)
  end
  return x, u, k
end

local function raw_rows(req)
  local x, u, k = features_rows(req)
  local r = 0
  for i = 1, #TB do r = TB[i](x, r) end
  return r, x, u, k
end

function M.features(req)
  local x = features_rows(req)
  return x
end

function M.raw(req)
  local r, x = raw_rows(req)
  return r, x
end

function M.contributions(x)
  local c = {}
  for i = 1, NF do c[i] = 0 end
  local r = 0
  for i = 1, #TC do r = r + TC[i](x, c) end
  return r, c
end

-- reasons are computed only for jobs at or above M.threshold (the only ones users are warned
-- about): the contribution walk costs as much again as the risk itself.
function M.predict(req)
  local r, x, u, k = raw_rows(req)
  local risk = calibrate(1 / (1 + math.exp(-r)))
  local suggestion = nil
  if WITH_HISTORY then
    -- the reference of x[20]: the job name's p90 successful runtime, else the user's
    local p90 = k and k[5] or nil
    if not p90 then p90 = u and u[5] or nil end
    local tl = x[5]
    if p90 and p90 > 0 and tl ~= nil and tl < p90 then
      suggestion = "--time=" .. hms(p90 * 1.2) .. " (similar jobs needed " .. human(p90) .. ")"
    end
  end
  if risk < M.threshold then return risk, {}, suggestion end
  local _, c = M.contributions(x)
  return risk, reasons_of(x, c), suggestion
end

return M
"""


def compile_submit_lua(trees: Mapping[str, Any], history: LiteHistory, calibration: CalibrationMap,
                       version: str, threshold: float, with_history: bool,
                       key: Optional[KeyHash] = None, levels=CUTOFFS) -> str:
    """The whole ``submit_model.lua`` text. ``key``: the history key hash (default: a new
    random one); ``levels``: the risk scale's cut-offs (nomade.risk_scale), which job_submit.lua
    reads as ``M.levels``."""
    key = key or KeyHash.random()
    names = SITE_INDEPENDENT + (HISTORY if with_history else [])
    if list(trees["feature_names"]) != names:
        raise ValueError("the tree model's features are not the lite submit schema; "
                         "only the lite submit GBDT can be compiled to Lua")
    out = [f"-- submit_model.lua generated by nomade for bundle {_safe_comment(version)}; do not edit.",
           "-- features: " + ", ".join(names),
           "local M = {}",
           f"M.format = {LUA_FORMAT}",
           f"M.version = {lua_str(version)}",
           f"M.threshold = {lua_num(threshold)}",
           "M.levels = {" + ",".join(lua_num(c) for c in levels) + "}",
           f"local NF = {len(names)}",
           f"local WITH_HISTORY = {'true' if with_history else 'false'}",
           "local floor = math.floor",
           "local CAL_X = {" + ",".join(lua_num(v) for v in calibration.xs) + "}",
           "local CAL_Y = {" + ",".join(lua_num(v) for v in calibration.ys) + "}",
           "local U = {}", "local N = {}"] + key.lua()
    if with_history:
        rows = [f"U[{key.of(k)}] = {_agg_lua(a)}" for k, a in history.users.items()]
        rows += [f"N[{key.of(k)}] = {_agg_lua(a)}" for k, a in history.names.items()]
        for b in range(0, len(rows), TABLE_BLOCK):  # a Lua function holds at most 2^18 constants
            out.append("(function()")
            out.extend(rows[b:b + TABLE_BLOCK])
            # the ';' ends the call statement: without it Lua 5.1 reads the next block's '(' as a
            # call of this one's result ("ambiguous syntax (function call x new statement)")
            out.append("end)();")
    out.append(_FEATURES_LUA)
    # TB[j](x, r): r plus the leaf values of TREE_BLOCK trees, in tree order, with the features
    # read into locals once (the fast path for the risk: no call or table read per tree);
    # TC[i](x, c): one tree's walk that also credits each split's change of node value to
    # c[feature] (for reasons).
    xs = ", ".join(f"x{i + 1}" for i in range(len(names)))
    xr = ", ".join(f"x[{i + 1}]" for i in range(len(names)))
    out.append("local TB = {}")
    tl = trees["trees"]
    for b in range(0, len(tl), TREE_BLOCK):
        out.append(f"TB[{b // TREE_BLOCK + 1}] = function(x, r)")
        out.append(f"  local {xs} = {xr}")
        for t in tl[b:b + TREE_BLOCK]:
            _tree_lua(t, out, "  ", 0, False, local=True)
        out.append("  return r")
        out.append("end")
    out.append("local TC = {}")
    for ti, t in enumerate(tl):
        out.append(f"TC[{ti + 1}] = function(x, c)")
        _tree_lua(t, out, "  ", 0, True)
        out.append("end")
    out.append(_PREDICT_LUA)
    return "\n".join(out) + "\n"
