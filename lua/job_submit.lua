-- nomade job_submit.lua: warns a user at sbatch time when the job looks like past failures.
-- Lua 5.1 (as Debian's slurmctld links it). Runs inside slurmctld holding its locks, so it is
-- small and fail-open: it never calls out (no sockets, processes or database), reads no file
-- except the model below, always returns slurm.SUCCESS and never changes the job.
-- See docs/slurm.md.

---------------------------------------------------------------------- site settings
local MODEL_PATH = "/etc/nomade/submit_model.lua" -- written by `nomade install-slurm`
local THRESHOLD = nil           -- nil = the model's M.threshold; else a number in 0..1
local RELOAD_CHECK_S = 10       -- without lfs: how often to re-read the model and compare
local LFS_CHECK_S = 1           -- with lfs: how often to stat it (mtime, size, inode)
local MAX_MODEL_BYTES = 8 * 1024 * 1024 -- a bigger model file is refused (load time holds locks)
local MAX_MODEL_STEPS = 200000  -- VM instructions one prediction may take before it is aborted
local MAX_LOAD_STEPS = 50000000 -- VM instructions running the model file may take
local MAX_MODEL_KB = 16384      -- memory (KiB) one prediction may add before it is aborted
local MAX_LOAD_KB = 524288      -- memory (KiB) running the model file may add
local MAX_TEXT = 300            -- longest reason, suggestion or version a model may return
local QUIET_TAG = "nomade:quiet" -- in --comment: no message for this job
local QUIET_ENV = "NOMADE_QUIET" -- NOMADE_QUIET=1 in the job's environment (sbatch): same
local ERROR_LOG_EVERY_S = 300   -- at most one error line per this many seconds, per kind of error
local MAX_USERS = 5000          -- bound on the per-user submission counters
local WINDOW_S = 3600           -- "recent submissions" window
---------------------------------------------------------------------- end of settings

local NO_VAL = 4294967294       -- NO_VAL (32-bit); INFINITE is 4294967295
local BIG64 = 1e15              -- NO_VAL64 / INFINITE64 and flag bits: no real MiB value is this big
local HOOK_EVERY = 1000         -- the model's step and memory caps are checked every this many steps
local MAX_REP_BYTES = 65536     -- longest string the model's string.rep may build
local CHUNK_NAME = "=nomade submit_model.lua"
-- the risk scale (nomade.risk_scale): level names, and the cut-offs used when the model carries
-- none (M.levels: the lower bounds of MODERATE, HIGH and CRITICAL on the calibrated risk)
local LEVEL_NAMES = { "LOW", "MODERATE", "HIGH", "CRITICAL" }
local LEVEL_CUTS = { 0.3, 0.6, 0.8 }

local ok_lfs, lfs = pcall(require, "lfs")
if not ok_lfs then lfs = nil end

-- captured before any model runs; the model never sees these
local sethook, getinfo, gc = debug.sethook, debug.getinfo, collectgarbage
local STRING_MT = getmetatable("")
local HOST_STRING_INDEX = STRING_MT and STRING_MT.__index
local str_rep, str_len, str_sub = string.rep, string.len, string.sub

local model = nil               -- the loaded model table M
local model_text = nil          -- the text last tried (loaded or refused): unchanged = not reloaded
local model_stamp = nil         -- with lfs: "mtime:size:ino" of the file last read
local problem = nil             -- why there is no new model (missing, too big): logged on change
local checked = false           -- looked at the file at least once
local next_check = 0            -- os.time() of the next look
local last_error_at = {}        -- kind of error -> os.time() of its last line
local suppressed = {}           -- kind of error -> lines suppressed since
local counters = {}             -- user -> {t0 = window start, n = count, prev = previous window}
local n_users = 0

-- one line in slurmctld's log, at most one per ERROR_LOG_EVERY_S for each kind of error: ``kind``
-- is one of a handful of constant names (missing, unreadable, too_big, bytecode, compile,
-- load_run, invalid, raised, bad_answer, internal), so a new kind of problem is never hidden
-- behind the rate limit of an older one; never raises
local function log_error(kind, fmt, ...)
  kind = tostring(kind or "other")
  local now = os.time()
  if now - (last_error_at[kind] or -1e9) < ERROR_LOG_EVERY_S then
    suppressed[kind] = (suppressed[kind] or 0) + 1
    return
  end
  local ok, msg = pcall(string.format, fmt, ...)
  if not ok then msg = tostring(fmt) end
  if (suppressed[kind] or 0) > 0 then
    msg = msg .. string.format(" (%d similar errors suppressed)", suppressed[kind])
  end
  last_error_at[kind], suppressed[kind] = now, 0
  pcall(slurm.log_error, "nomade: %s", msg)
end

-- a value the model handed back, as bounded text for a log line
local function shown(v)
  return str_sub(tostring(v), 1, MAX_TEXT)
end

---------------------------------------------------------------------- the model sandbox
-- The model file is data from whoever can write MODEL_PATH (docs/slurm.md, "Trust boundaries"):
-- it runs in an empty environment holding only pure functions (no pcall, so it cannot catch the
-- step hook's error; no getmetatable, load*, require, io, os, debug, coroutine), under a step
-- and memory cap, and what it returns is checked before use.

local function bounded_rep(s, n)
  local len = str_len(s)
  n = tonumber(n) or 0
  if n > 0 and len * n > MAX_REP_BYTES then
    error("string.rep result over " .. MAX_REP_BYTES .. " bytes", 2)
  end
  return str_rep(s, n)
end

-- the string functions a model may use: no patterns (their backtracking is unbounded time in
-- C, out of the hook's reach), no dump; string.rep bounded
local function model_string()
  return { byte = string.byte, char = string.char, format = string.format, len = string.len,
           lower = string.lower, upper = string.upper, reverse = string.reverse,
           sub = string.sub, rep = bounded_rep }
end

-- what ("").name reaches while model code runs: a table the model cannot get hold of
local STRING_METHODS = model_string()

local function sandbox()
  local m = {}
  for k, v in pairs(math) do
    if k ~= "random" and k ~= "randomseed" then m[k] = v end
  end
  return {
    math = m, string = model_string(),
    table = { insert = table.insert, remove = table.remove, sort = table.sort, concat = table.concat },
    pairs = pairs, ipairs = ipairs, next = next, type = type, select = select,
    tostring = tostring, tonumber = tonumber, unpack = unpack or table.unpack,
    error = error, assert = assert,
  }
end

-- f(...) under a step cap and a memory cap, with strings' methods pointing at the bounded copy;
-- returns pcall's status and up to three results. The hook only raises while a function of the
-- model's chunk runs, so it can never fire in this function's own code after pcall returns.
local function guarded(max_steps, max_kb, f, a1)
  local limit, ticks, mem0 = max_steps / HOOK_EVERY, 0, gc("count")
  local function hook()
    ticks = ticks + 1
    local info = getinfo(2, "S")
    if info == nil or info.source ~= CHUNK_NAME then return end
    if ticks > limit then error("took over " .. max_steps .. " steps", 0) end
    if gc("count") - mem0 > max_kb then error("used over " .. max_kb .. " KiB of memory", 0) end
  end
  if STRING_MT then STRING_MT.__index = STRING_METHODS end
  sethook(hook, "", HOOK_EVERY)
  local ok, r1, r2, r3 = pcall(f, a1)
  sethook()
  if STRING_MT then STRING_MT.__index = HOST_STRING_INDEX end
  return ok, r1, r2, r3
end

-- a function of the text, run in env: Lua 5.1 (setfenv) or 5.2+ (load's env argument)
local function compile(text, env)
  if setfenv then
    local chunk, err = loadstring(text, CHUNK_NAME)
    if chunk then setfenv(chunk, env) end
    return chunk, err
  end
  return load(text, CHUNK_NAME, "t", env)
end

-- a short string, or nil when v is not one
local function short_text(v)
  if type(v) == "string" and #v <= MAX_TEXT then return v end
  return nil
end

-- M.levels: exactly as many numbers in 0..1 as LEVEL_CUTS, strictly increasing; a copy (the
-- model cannot change it later), or nil. Also stops at the first entry past the expected count.
local function checked_levels(lv)
  if type(lv) ~= "table" then return nil end
  local n, want, out = 0, #LEVEL_CUTS, {}
  for k, v in next, lv do
    n = n + 1
    if n > want or type(k) ~= "number" or k ~= math.floor(k) or k < 1 or k > want
       or type(v) ~= "number" or not (v >= 0 and v <= 1) then
      return nil
    end
    out[k] = v
  end
  if n ~= want then return nil end
  for i = 2, want do
    if not (out[i] > out[i - 1]) then return nil end
  end
  return out
end

local function checked_model(m)
  if type(m) ~= "table" or type(rawget(m, "predict")) ~= "function" then
    return nil, "does not return a table with predict(); re-export the bundle"
  end
  if rawget(m, "format") ~= 1 then
    return nil, "has format " .. shown(rawget(m, "format")) .. ", expected 1; upgrade nomade's job_submit.lua"
  end
  local v, t = rawget(m, "version"), rawget(m, "threshold")
  if v ~= nil and type(v) ~= "number" and short_text(v) == nil then
    return nil, "has a version that is not a short string"
  end
  if t ~= nil and not (type(t) == "number" and t >= 0 and t <= 1) then
    return nil, "has a threshold outside 0..1"
  end
  local lv, levels = rawget(m, "levels"), LEVEL_CUTS
  if lv ~= nil then
    levels = checked_levels(lv)
    if levels == nil then
      return nil, "has levels that are not " .. #LEVEL_CUTS .. " increasing numbers in 0..1"
    end
  end
  return { predict = m.predict, version = tostring(v), threshold = t, levels = levels }, nil
end

local function load_model(path, text)
  if str_sub(text, 1, 1) == "\27" then
    return nil, "model " .. path .. " is bytecode; only a text model is loaded", "bytecode"
  end
  local chunk, err = compile(text, sandbox())
  if not chunk then return nil, "cannot load " .. path .. ": " .. shown(err), "compile" end
  local ok, m = guarded(MAX_LOAD_STEPS, MAX_LOAD_KB, chunk)
  if not ok then return nil, "model " .. path .. " failed to run: " .. shown(m), "load_run" end
  local checked_m, why = checked_model(m)
  if not checked_m then return nil, "model " .. path .. " " .. why, "invalid" end
  return checked_m, nil
end

---------------------------------------------------------------------- reading the model file
-- "mtime:size:ino" through lfs; nil when the file is missing
local function lfs_stamp(path)
  local a = lfs.attributes(path)
  if not a then return nil end
  return tostring(a.modification) .. ":" .. tostring(a.size) .. ":" .. tostring(a.ino)
end

-- the file's text, or nil, why and the kind of error (missing, unreadable, too_big); a big file is
-- refused before reading
local function read_model(path)
  local fh, err = io.open(path, "rb")
  if not fh then
    if string.find(tostring(err), "No such file", 1, true) then
      return nil, "model " .. path .. " is missing; jobs pass without a risk check", "missing"
    end
    return nil, "cannot read model " .. tostring(err) .. " (it must be readable by SlurmUser)", "unreadable"
  end
  local size = fh:seek("end")
  if size == nil or size > MAX_MODEL_BYTES then
    fh:close()
    return nil, string.format("%s is %s bytes, over the %d-byte limit; publish a smaller bundle",
                              path, tostring(size), MAX_MODEL_BYTES), "too_big"
  end
  fh:seek("set", 0)
  local text = size > 0 and fh:read(size) or ""
  fh:close()
  return text or "", nil
end

-- is it time to look at the file, and (with lfs) has it changed since it was last read?
local function should_read(now)
  if checked and now < next_check then return false end
  checked = true
  if not lfs then
    next_check = now + RELOAD_CHECK_S
    return true
  end
  next_check = now + LFS_CHECK_S
  local stamp = lfs_stamp(MODEL_PATH)
  if stamp ~= nil and stamp == model_stamp then return false end
  model_stamp = stamp
  return true
end

local function try_text(text)
  local m, err, kind = load_model(MODEL_PATH, text)
  if not m then
    log_error(kind, "%s (keeping %s)", err, model and ("model " .. model.version) or "no model")
    return
  end
  model = m
  pcall(slurm.log_info, "nomade: loaded model %s from %s", m.version, MODEL_PATH)
end

-- the current model, reloaded when the file's content changes; a new file that does not load
-- keeps the old model and is logged once (not tried again until it changes)
local function current_model()
  if not should_read(os.time()) then return model end
  local text, why, kind = read_model(MODEL_PATH)
  if text == nil then
    if why ~= problem then log_error(kind, "%s", why) end
    problem = why
    return model
  end
  problem = nil
  if text == model_text then return model end
  model_text = text
  try_text(text)
  return model
end

local function num(v)
  v = tonumber(v)
  if v == nil or v >= NO_VAL or v < 0 then return nil end
  return v
end

local function num64(v)
  v = tonumber(v)
  if v == nil or v >= BIG64 or v < 0 or (v >= NO_VAL and v < NO_VAL + 2) then return nil end
  return v
end

local function str(v)
  if v == nil then return nil end
  v = tostring(v)
  if v == "" then return nil end
  return v
end

-- GPUs from "gres:gpu:2", "gres/gpu:a100:2", "gpu:1,gres:foo:3"
local function gpu_count(s)
  if type(s) ~= "string" then return nil end
  local total = nil
  for item in string.gmatch(s, "[^,]+") do
    if string.find(item, "gpu") then
      local n = tonumber(string.match(item, ":(%d+)$")) or 1
      total = (total or 0) + n
    end
  end
  return total
end

local function count_submit(user, now)
  local c = counters[user]
  if c == nil then
    if n_users >= MAX_USERS then
      local kept = 0
      for u, cc in pairs(counters) do
        if now - cc.t0 >= 2 * WINDOW_S then counters[u] = nil else kept = kept + 1 end
      end
      n_users = kept
      if n_users >= MAX_USERS then counters, n_users = {}, 0 end
    end
    c = { t0 = now, n = 0, prev = 0 }
    counters[user] = c
    n_users = n_users + 1
  end
  local age = now - c.t0
  if age >= 2 * WINDOW_S then
    c.t0, c.n, c.prev = now, 0, 0
  elseif age >= WINDOW_S then
    c.t0, c.prev, c.n = c.t0 + WINDOW_S, c.n, 0
  end
  local frac = 1 - (now - c.t0) / WINDOW_S
  local recent = math.floor(c.prev * frac + c.n + 0.5) -- sliding-window estimate, before this job
  c.n = c.n + 1
  return recent
end

local function build_req(job_desc, submit_uid, now)
  local user = str(job_desc.user_name) or tostring(submit_uid)
  local per_cpu = num64(job_desc.min_mem_per_cpu)
  local per_node = num64(job_desc.min_mem_per_node)
  local tl = num(job_desc.time_limit)
  return {
    user = user,
    name = str(job_desc.name) or "",
    partition = str(job_desc.partition),
    account = str(job_desc.account),
    qos = str(job_desc.qos),
    cpus = num(job_desc.min_cpus),
    nodes = num(job_desc.min_nodes),
    gpus = gpu_count(job_desc.tres_per_node) or gpu_count(job_desc.tres_per_job)
           or gpu_count(job_desc.tres_per_task) or gpu_count(job_desc.gres),
    mem_mb = per_cpu or per_node,
    mem_per_cpu = per_cpu ~= nil,
    timelimit_s = tl and tl * 60 or nil,
    submit_time = now,
    recent_submits = count_submit(user, now),
  }
end

local function is_quiet(job_desc)
  local c = job_desc.comment
  if type(c) == "string" and string.find(c, QUIET_TAG, 1, true) then return true end
  local env = job_desc.environment
  if type(env) == "table" then
    local v = env[QUIET_ENV]
    if v ~= nil and v ~= "" and v ~= "0" then return true end
  end
  return false
end

-- the level name of a risk on the scale ``cuts`` (the model's checked M.levels)
local function level_of(risk, cuts)
  local name = LEVEL_NAMES[1]
  for i = 1, #LEVEL_CUTS do
    if risk >= cuts[i] then name = LEVEL_NAMES[i + 1] end
  end
  return name
end

local function message(risk, reasons, suggestion, version, levels)
  local parts = {}
  for i = 1, reasons and #reasons or 0 do parts[i] = reasons[i] end
  local text = string.format("nomade: %s failure risk (%d%%)", level_of(risk, levels or LEVEL_CUTS),
                             math.floor(risk * 100 + 0.5))
  if #parts > 0 then text = text .. ": " .. table.concat(parts, "; ") end
  text = text .. "."
  if type(suggestion) == "string" and suggestion ~= "" then
    text = text .. "\nnomade: suggestion: " .. suggestion
  end
  text = text .. "\nnomade: details after submission: nomade-why JOBID; silence: --comment=" .. QUIET_TAG
  return text
end

-- reasons: nil or an array of at most 3 short strings; also stops at the 4th entry of any table
local function valid_reasons(reasons)
  if reasons == nil then return true end
  if type(reasons) ~= "table" then return false end
  local n = 0
  for k, v in next, reasons do
    n = n + 1
    if n > 3 or type(k) ~= "number" or k ~= math.floor(k) or k < 1 or k > 3 or short_text(v) == nil then
      return false
    end
  end
  return n == #reasons
end

-- the model's answer, or nil and what is wrong with it
local function validated(risk, reasons, suggestion)
  if type(risk) ~= "number" or risk ~= risk or risk < 0 or risk > 1 then
    return nil, "a non-number or out-of-range risk (" .. shown(risk) .. ")"
  end
  if not valid_reasons(reasons) then return nil, "reasons that are not at most 3 short strings" end
  if suggestion ~= nil and short_text(suggestion) == nil then
    return nil, "a suggestion that is not a short string"
  end
  return risk, nil
end

local function predict(m, req)
  return guarded(MAX_MODEL_STEPS, MAX_MODEL_KB, m.predict, req)
end

local function check_job(job_desc, submit_uid)
  local m = current_model()
  if m == nil then return end
  local now = os.time()
  local req = build_req(job_desc, submit_uid, now)
  if is_quiet(job_desc) then return end
  local ok, risk, reasons, suggestion = predict(m, req)
  if not ok then
    log_error("raised", "model %s raised for uid %s: %s", m.version, tostring(submit_uid), shown(risk))
    return
  end
  local why
  risk, why = validated(risk, reasons, suggestion)
  if risk == nil then
    log_error("bad_answer", "model %s returned %s for uid %s", m.version, why, tostring(submit_uid))
    return
  end
  local threshold = THRESHOLD or m.threshold or 0.5
  if risk >= threshold then
    slurm.log_user("%s", message(risk, reasons, suggestion, m.version, m.levels))
  end
end

function slurm_job_submit(job_desc, part_list, submit_uid)
  local ok, err = pcall(check_job, job_desc, submit_uid)
  if not ok then
    log_error("internal", "slurm_job_submit for uid %s: %s", tostring(submit_uid), tostring(err))
  end
  return slurm.SUCCESS
end

function slurm_job_modify(job_desc, job_rec, part_list, modify_uid)
  return slurm.SUCCESS
end

-- test and benchmark hook: the internals, for lupa/lua5.1 only (slurmctld never calls it)
function nomade_internals()
  return { build_req = build_req, message = message, current_model = current_model,
           counters = function() return counters, n_users end, predict = predict,
           validated = validated, level_of = level_of,
           scale = function() return LEVEL_NAMES, LEVEL_CUTS end }
end

return slurm.SUCCESS
