-- wrk script: PUT to LOAD_PATH as USER_COUNT seeded users, the n-th of them with the id
-- USER_PREFIX .. (FIRST_USER + n * USER_STEP), each request with the next user's demo bearer
-- token, threads interleaved. With more users than requests, every request is some user's
-- first; once the users are used up it starts over, and done() says how often that happened.
-- With PAUSE_MS set, each connection waits that long between an answer and its next request,
-- so the traffic stays light instead of taking all the CPU the server can get.

local path = os.getenv("LOAD_PATH") or "/user/password"
local first_user = tonumber(os.getenv("FIRST_USER") or "0")
local user_count = tonumber(os.getenv("USER_COUNT"))
local user_step = tonumber(os.getenv("USER_STEP") or "1")
local user_prefix = os.getenv("USER_PREFIX") or "u"
local pause_ms = tonumber(os.getenv("PAUSE_MS") or "0")
local threads = {}

if pause_ms > 0 then
  function delay()
    return pause_ms
  end
end

function setup(thread)
  thread:set("lane", #threads)
  table.insert(threads, thread)
end

function init(args)
  stride = tonumber(os.getenv("LOAD_THREADS"))
  next_index = lane
  wraps = 0
end

function request()
  if next_index >= user_count then
    next_index = next_index % user_count
    wraps = wraps + 1
  end
  local user = string.format("%s%d", user_prefix, first_user + next_index * user_step)
  next_index = next_index + stride
  return wrk.format("PUT", path, { Authorization = "Bearer demo-token-" .. user }, "")
end

function done(summary, latency, requests)
  local wrapped = 0
  for _, thread in ipairs(threads) do
    wrapped = wrapped + thread:get("wraps")
  end
  io.write(string.format("users reused: %d wrap(s)\n", wrapped))
  io.write(string.format("RESULT rps=%.1f p50_ms=%.3f p99_ms=%.3f requests=%d non2xx=%d errors=%d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.requests, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
