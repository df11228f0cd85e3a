-- Shadow traffic for mlops-tasks: copy each live POST /invocations to the servers of
-- backend "shadow" that are UP. The copy is sent by a separate Lua task with HAProxy's
-- own HTTP client, so the client's request goes on at once and never sees the
-- shadow's answer (discarded). Copies are dropped while too many are in flight.
local MAX_IN_FLIGHT = 64
local in_flight = 0
local rr = 0

core.register_action("mirror", {"http-req"}, function(txn)
  local body = txn.sf:req_body()
  if body == nil or #body == 0 then return end
  local targets = {}
  for _, srv in pairs(core.backends["shadow"].servers) do
    local status = srv:get_stats()["status"] or ""
    if status:sub(1, 2) == "UP" then targets[#targets + 1] = srv:get_addr() end
  end
  if #targets == 0 or in_flight >= MAX_IN_FLIGHT then return end
  rr = rr + 1
  local addr = targets[(rr % #targets) + 1]
  local ctype = "application/json"
  local hdrs = txn.http:req_get_headers()
  if hdrs["content-type"] ~= nil and hdrs["content-type"][0] ~= nil then
    ctype = hdrs["content-type"][0]
  end
  local rid = ""
  if hdrs["x-request-id"] ~= nil and hdrs["x-request-id"][0] ~= nil then
    rid = hdrs["x-request-id"][0]
  end
  in_flight = in_flight + 1
  core.register_task(function()
    local ok = pcall(function()
      local hc = core.httpclient()
      hc:post{url = "http://" .. addr .. "/invocations", body = body, timeout = 10000,
              headers = {["content-type"] = {ctype}, ["x-request-id"] = {rid},
                         ["x-shadow"] = {"1"}}}
    end)
    in_flight = in_flight - 1
  end)
end)
