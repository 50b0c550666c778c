-- wrk script for bench/soak.sh: mixed traffic. Every connection's requests
-- rotate among six roads (each thread starts at a different one):
--   GET  /api/reports/daily_usage
--   GET  /api/reports/user_visits
--   POST /graphql usageByDay    (bench/queries/usageByDay.json)
--   POST /graphql visitsPerUser (bench/queries/visitsPerUser.json)
--   POST /graphql summary       (bench/queries/summary.json)
--   GET  /health_check
-- SOAK_QUERIES_DIR: where the GraphQL bodies are (default bench/queries).
-- Every answer is checked: non-2xx, an empty 2xx body, and a 2xx body holding
-- "errors" (GraphQL reports its errors with HTTP 200) are counted separately.
-- At the end prints one line "SOAKJSON {...}": wrk's counts and latency
-- percentiles (microseconds) plus those checks and the requests sent per road.

local dir = os.getenv("SOAK_QUERIES_DIR") or "bench/queries"

local function slurp(name)
  local f = assert(io.open(dir .. "/" .. name, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

local names = { "daily_usage", "user_visits", "usageByDay", "visitsPerUser", "summary", "health_check" }

local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("thread_no", #threads)
end

function init(args)
  local function post(file)
    return wrk.format("POST", "/graphql", { ["Content-Type"] = "application/json" }, slurp(file))
  end
  reqs = {
    wrk.format("GET", "/api/reports/daily_usage", {}),
    wrk.format("GET", "/api/reports/user_visits", {}),
    post("usageByDay.json"),
    post("visitsPerUser.json"),
    post("summary.json"),
    wrk.format("GET", "/health_check", {}),
  }
  nreq = #reqs
  idx = ((thread_no or 1) - 1) % nreq
  sent = {}
  for i = 1, nreq do sent[i] = 0 end
  responses, non2xx, gql_errors, empty = 0, 0, 0, 0
  bad_sample = ""
end

function request()
  idx = idx % nreq + 1
  sent[idx] = sent[idx] + 1
  return reqs[idx]
end

function response(status, headers, body)
  responses = responses + 1
  local bad = nil
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
    bad = "HTTP " .. status
  elseif body == nil or #body == 0 then
    empty = empty + 1
    bad = "HTTP " .. status .. " with an empty body"
  elseif body:find('"errors"', 1, true) then
    gql_errors = gql_errors + 1
    bad = "HTTP " .. status .. " with errors"
  end
  if bad and bad_sample == "" then
    bad_sample = bad .. ": " .. (body or ""):sub(1, 200)
  end
end

local function jstr(s)
  return '"' .. s:gsub('[%c"\\]', function(c) return string.format("\\u%04x", c:byte()) end) .. '"'
end

done = function(summary, latency, requests)
  local tot = { responses = 0, non2xx = 0, gql_errors = 0, empty = 0 }
  local per = {}
  for i = 1, #names do per[i] = 0 end
  local sample = ""
  for _, t in ipairs(threads) do
    for k, _ in pairs(tot) do tot[k] = tot[k] + (t:get(k) or 0) end
    local s = t:get("sent")
    if s then for i = 1, #names do per[i] = per[i] + (s[i] or 0) end end
    local b = t:get("bad_sample")
    if sample == "" and b and b ~= "" then sample = b end
  end
  local sent_parts = {}
  for i, n in ipairs(names) do sent_parts[i] = string.format('"%s":%d', n, per[i]) end
  local e = summary.errors
  io.write(string.format(
    'SOAKJSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"mean_us":%.1f,"max_us":%d,' ..
    '"responses":%d,"non2xx":%d,"gql_errors":%d,"empty":%d,"bad_sample":%s,"sent":{%s}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.mean, latency.max,
    tot.responses, tot.non2xx, tot.gql_errors, tot.empty, jstr(sample),
    table.concat(sent_parts, ",")))
end
