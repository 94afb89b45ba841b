-- Lua scoring time per job: the whole slurm_job_submit path (model check, req, predict, message)
-- timed with os.clock over N evaluations inside Lua 5.1.
-- usage: lua5.1 bench/lua_score.lua [model.lua] [N] [threshold]   (run from the repository root)
-- threshold overrides the model's: 2 = nobody is warned (the common path: risk only),
-- 0 = everybody is warned (risk + reasons + message)
local model_path = arg[1] or "lua/test_model.lua"
local n = tonumber(arg[2]) or 10000
local threshold = arg[3]
local src = assert(io.open("lua/job_submit.lua")):read("*a")
src = string.gsub(src, 'local MODEL_PATH = "[^"]*"', 'local MODEL_PATH = "' .. model_path .. '"')
if threshold then src = string.gsub(src, "local THRESHOLD = nil", "local THRESHOLD = " .. threshold) end
local shown = 0
slurm = { SUCCESS = 0, ERROR = -1,
  log_user = function() shown = shown + 1 end,
  log_info = function() end,
  log_error = function(fmt, ...) io.stderr:write(string.format(fmt, ...), "\n") end }
assert(loadstring(src))()
local function desc(i)
  return { user_name = "user" .. (i % 50), name = (i % 10 == 0) and "risky" or "sim",
           time_limit = 60 + i % 100, min_cpus = 1 + i % 8, min_nodes = 1,
           min_mem_per_cpu = 1000, tres_per_node = (i % 7 == 0) and "gres:gpu:1" or nil }
end
local descs = {}
for i = 1, n do descs[i] = desc(i) end
slurm_job_submit(descs[1], {}, 1000) -- load the model
local t0 = os.clock()
for i = 1, n do slurm_job_submit(descs[i], {}, 1000 + i % 50) end
local dt = os.clock() - t0
local ok_lfs = pcall(require, "lfs")
print(string.format("lua_score: %d evaluations, %.2f us/job (lfs %s, %d messages, model %s, threshold %s)",
  n, dt / n * 1e6, ok_lfs and "yes" or "no", shown, model_path, threshold or "model's"))
