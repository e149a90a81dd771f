-- wrk script: POST /user/password/confirm, each request with the next token from TOKEN_FILE
-- (one per line), threads interleaved. Tokens are single-use: once they are used up, the
-- requests that follow are refusals, and done() says so.

local token_file = os.getenv("TOKEN_FILE")
local threads = {}

function setup(thread)
  thread:set("lane", #threads)
  table.insert(threads, thread)
end

function init(args)
  stride = tonumber(os.getenv("LOAD_THREADS"))
  tokens = {}
  for line in io.lines(token_file) do
    table.insert(tokens, line)
  end
  next_index = lane + 1
  exhausted = 0
end

function request()
  local token = tokens[next_index]
  if token == nil then
    exhausted = exhausted + 1
    token = tokens[1]
  end
  next_index = next_index + stride
  local body = '{"data":{"type":"passwordSetup","attributes":{"token":"' .. token ..
    '","password":"correct horse battery staple 42"}}}'
  return wrk.format("POST", "/user/password/confirm",
    { ["Content-Type"] = "application/vnd.api+json" }, body)
end

function done(summary, latency, requests)
  local exhausted_total = 0
  for _, thread in ipairs(threads) do
    exhausted_total = exhausted_total + thread:get("exhausted")
  end
  io.write(string.format("requests past the last token: %d\n", exhausted_total))
  local seconds = summary.duration / 1e6
  io.write(string.format(
    "RESULT rps=%.1f p50_ms=%.3f p99_ms=%.3f requests=%d non2xx=%d ok_per_s=%.1f errors=%d\n",
    summary.requests / seconds,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.requests, summary.errors.status,
    (summary.requests - summary.errors.status) / seconds,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
