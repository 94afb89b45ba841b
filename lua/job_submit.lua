-- nomade job_submit.lua: warns a user at sbatch time when the job looks like past failures.
-- Lua 5.1 (as Debian's slurmctld links it). Runs inside slurmctld holding its locks, so it is
-- small and fail-open: it never calls out (no sockets, processes or database), reads no file
-- except the model below, always returns slurm.SUCCESS and never changes the job.
-- See docs/slurm.md.

---------------------------------------------------------------------- site settings
local MODEL_PATH = "/etc/nomade/submit_model.lua" -- written by `nomade install-slurm`
local THRESHOLD = nil           -- nil = the model's M.threshold; else a number in 0..1
local RELOAD_CHECK_S = 10       -- without lfs: how often to look for a new model
local LFS_CHECK_S = 1           -- with lfs: how often to stat it (mtime has 1-second resolution)
local MAX_MODEL_BYTES = 8 * 1024 * 1024 -- a bigger model file is refused (load time holds locks)
local MAX_MODEL_STEPS = 200000  -- VM instructions one prediction may take before it is aborted
local QUIET_TAG = "nomade:quiet" -- in --comment: no message for this job
local QUIET_ENV = "NOMADE_QUIET" -- NOMADE_QUIET=1 in the job's environment (sbatch): same
local ERROR_LOG_EVERY_S = 300   -- at most one error line per this many seconds, per kind of error
local MAX_USERS = 5000          -- bound on the per-user submission counters
local WINDOW_S = 3600           -- "recent submissions" window
---------------------------------------------------------------------- end of settings

local NO_VAL = 4294967294       -- NO_VAL (32-bit); INFINITE is 4294967295
local BIG64 = 1e15              -- NO_VAL64 / INFINITE64 and flag bits: no real MiB value is this big

local ok_lfs, lfs = pcall(require, "lfs")
if not ok_lfs then lfs = nil end

local model = nil               -- the loaded model table M
local model_stamp = nil         -- "mtime:size" of the file it came from
local next_check = 0            -- without lfs: os.time() of the next look
local last_error_at = {}        -- message format -> os.time() of its last line
local suppressed = {}           -- message format -> lines suppressed since
local counters = {}             -- user -> {t0 = window start, n = count, prev = previous window}
local n_users = 0

-- one line in slurmctld's log, at most one per ERROR_LOG_EVERY_S for each kind of error
-- (kind = the format string, a handful of constants); never raises
local function log_error(fmt, ...)
  local now = os.time()
  if now - (last_error_at[fmt] or -1e9) < ERROR_LOG_EVERY_S then
    suppressed[fmt] = (suppressed[fmt] or 0) + 1
    return
  end
  local ok, msg = pcall(string.format, fmt, ...)
  if not ok then msg = tostring(fmt) end
  if (suppressed[fmt] or 0) > 0 then
    msg = msg .. string.format(" (%d similar errors suppressed)", suppressed[fmt])
  end
  last_error_at[fmt], suppressed[fmt] = now, 0
  pcall(slurm.log_error, "nomade: %s", msg)
end

local function sandbox()
  local function copy(t)
    local c = {}
    for k, v in pairs(t) do c[k] = v end
    return c
  end
  return {
    math = copy(math), string = copy(string), table = copy(table),
    pairs = pairs, ipairs = ipairs, next = next, type = type, select = select,
    tostring = tostring, tonumber = tonumber, unpack = unpack, error = error,
    pcall = pcall, assert = assert, setmetatable = setmetatable, getmetatable = getmetatable,
  }
end

-- the file's identity; nil when it is missing
local function file_stamp(path)
  if lfs then
    local a = lfs.attributes(path)
    if not a then return nil, nil end
    return tostring(a.modification) .. ":" .. tostring(a.size), a.size
  end
  local fh = io.open(path, "rb")
  if not fh then return nil, nil end
  local size = fh:seek("end")
  fh:close()
  return "size:" .. tostring(size), size
end

local function load_model(path, size)
  if size and size > MAX_MODEL_BYTES then
    return nil, string.format("%s is %d bytes, over the %d-byte limit; publish a smaller bundle",
                              path, size, MAX_MODEL_BYTES)
  end
  local chunk, err = loadfile(path)
  if not chunk then return nil, "cannot load " .. path .. ": " .. tostring(err) end
  setfenv(chunk, sandbox())
  local ok, m = pcall(chunk)
  if not ok then return nil, "model " .. path .. " failed to run: " .. tostring(m) end
  if type(m) ~= "table" or type(m.predict) ~= "function" then
    return nil, "model " .. path .. " does not return a table with predict(); re-export the bundle"
  end
  if m.format ~= 1 then
    return nil, "model " .. path .. " has format " .. tostring(m.format) .. ", expected 1; upgrade nomade's job_submit.lua"
  end
  return m, nil
end

-- the current model, reloaded when the file changes; keeps the old one if the new one is bad
local function current_model()
  local now = os.time()
  if model_stamp ~= nil and now < next_check then return model end
  next_check = now + (lfs and LFS_CHECK_S or RELOAD_CHECK_S)
  local stamp, size = file_stamp(MODEL_PATH)
  if stamp == nil then
    if model_stamp ~= "missing" then
      log_error("model %s is missing; jobs pass without a risk check", MODEL_PATH)
      model_stamp = "missing"
    end
    return model
  end
  if stamp == model_stamp then return model end
  local m, err = load_model(MODEL_PATH, size)
  model_stamp = stamp
  if not m then
    log_error("%s (keeping %s)", err, model and ("model " .. tostring(model.version)) or "no model")
    return model
  end
  model = m
  pcall(slurm.log_info, "nomade: loaded model %s from %s", tostring(m.version), MODEL_PATH)
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

local function level_of(risk)
  if risk >= 0.8 then return "HIGH" end
  if risk >= 0.5 then return "ELEVATED" end
  return "MODERATE"
end

local function message(risk, reasons, suggestion, version)
  local parts = {}
  if type(reasons) == "table" then
    for i = 1, math.min(3, #reasons) do
      if type(reasons[i]) == "string" then parts[#parts + 1] = reasons[i] end
    end
  end
  local text = string.format("nomade: %s failure risk (%d%%)", level_of(risk), math.floor(risk * 100 + 0.5))
  if #parts > 0 then text = text .. ": " .. table.concat(parts, "; ") end
  text = text .. "."
  if type(suggestion) == "string" and suggestion ~= "" then
    text = text .. "\nnomade: suggestion: " .. suggestion
  end
  text = text .. "\nnomade: details after submission: nomade-why JOBID; silence: --comment=" .. QUIET_TAG
  return text
end

local function predict(m, req)
  local function abort() error("prediction took over " .. MAX_MODEL_STEPS .. " steps") end
  debug.sethook(abort, "", MAX_MODEL_STEPS)
  local ok, risk, reasons, suggestion = pcall(m.predict, req)
  debug.sethook()
  return ok, risk, reasons, suggestion
end

local function check_job(job_desc, submit_uid)
  local m = current_model()
  if m == nil then return end
  local now = os.time()
  local req = build_req(job_desc, submit_uid, now)
  if is_quiet(job_desc) then return end
  local ok, risk, reasons, suggestion = predict(m, req)
  if not ok then
    log_error("model %s raised for uid %s: %s", tostring(m.version), tostring(submit_uid), tostring(risk))
    return
  end
  risk = tonumber(risk)
  if risk == nil or risk ~= risk then
    log_error("model %s returned a non-number risk for uid %s", tostring(m.version), tostring(submit_uid))
    return
  end
  local threshold = THRESHOLD or tonumber(m.threshold) or 0.5
  if risk >= threshold then
    slurm.log_user("%s", message(risk, reasons, suggestion, m.version))
  end
end

function slurm_job_submit(job_desc, part_list, submit_uid)
  local ok, err = pcall(check_job, job_desc, submit_uid)
  if not ok then
    log_error("slurm_job_submit for uid %s: %s", tostring(submit_uid), tostring(err))
  end
  return slurm.SUCCESS
end

function slurm_job_modify(job_desc, job_rec, part_list, modify_uid)
  return slurm.SUCCESS
end

-- test and benchmark hook: the internals, for lupa/lua5.1 only (slurmctld never calls it)
function nomade_internals()
  return { build_req = build_req, message = message, current_model = current_model,
           counters = function() return counters, n_users end, predict = predict }
end

return slurm.SUCCESS
