-- A hand-written submit_model.lua following the contract in docs/architecture.md, for tests
-- until nomade.train.lua_compile generates real ones. Deterministic rules shaped like past
-- failures on the test cluster:
--   * a job whose name starts with "risky" (test hook: always high risk);
--   * a time limit under 2 minutes (similar jobs timed out);
--   * more than 8 GiB per node (similar jobs ran out of memory);
--   * many submissions in the last hour.
local M = {}
M.format = 1
M.version = "test-1"
M.threshold = 0.5

local function logistic(z) return 1 / (1 + math.exp(-z)) end

function M.predict(req)
  local z = -3.0
  local reasons = {}
  local suggestion = nil
  if string.sub(req.name or "", 1, 5) == "risky" then
    z = z + 5.0
    reasons[#reasons + 1] = "jobs named like this one failed before"
    suggestion = "--time=00:10:00 (similar jobs needed 8m)"
  end
  if req.timelimit_s ~= nil and req.timelimit_s < 120 then
    z = z + 2.0
    reasons[#reasons + 1] = "time limit " .. req.timelimit_s .. " s is shorter than similar jobs ran"
    suggestion = suggestion or "--time=00:10:00 (similar jobs needed 8m)"
  end
  local mem = req.mem_mb
  if mem ~= nil and req.mem_per_cpu then mem = mem * (req.cpus or 1) end
  if mem ~= nil and mem > 8192 then
    z = z + 1.5
    reasons[#reasons + 1] = "large memory request (" .. math.floor(mem) .. " MiB)"
    suggestion = suggestion or "--mem=4G (similar jobs peaked at 3.1G)"
  end
  if (req.recent_submits or 0) > 500 then
    z = z + 1.0
    reasons[#reasons + 1] = "many submissions in the last hour"
  end
  while #reasons > 3 do table.remove(reasons) end
  return logistic(z), reasons, suggestion
end

return M
