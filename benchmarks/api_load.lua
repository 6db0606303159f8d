-- wrk script of benchmarks/api_load.py (not run on its own). Arguments after `--`:
--   mode      "recommendations" (GET /api/v1/products/<random sku>/recommendations/),
--             "cart" (POST /api/v1/cart/recommendations/ with <cart_size> random SKUs),
--             "plain" (GET the URL given to wrk as it is: the trivial endpoint)
--   sku_file  one SKU a line (URL-safe SKUs: the demo's are)
--   key       the API key, sent as "Authorization: Bearer <key>"
--   rate      requests per second over all threads, paced (0: as fast as possible)
--   threads   wrk's -t (the rate is split between them)
--   cart_size SKUs per cart
--   seed      random seed (per thread: seed + thread number)
--
-- Pacing: each thread hands out send times on a fixed schedule (1/rate apart) to whichever of
-- its connections is free, like wrk2's constant throughput; a connection waits in delay()
-- until its slot. If the server falls behind, late slots go out at once (catching up) and the
-- achieved rate printed at the end drops below the target. Latency is wrk's own: from writing
-- the request to reading the whole response (not from the scheduled send time, so a stall is
-- under-counted when every connection is busy: the benchmark uses enough connections that
-- this does not happen at the target rate, and reports the achieved rate to show it).

local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk_id, bench_timespec *tp);
]]
local clock = ffi.new("bench_timespec")

local function now_ms()
  ffi.C.clock_gettime(1, clock) -- CLOCK_MONOTONIC
  return tonumber(clock.tv_sec) * 1000 + tonumber(clock.tv_nsec) / 1e6
end

local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("number", counter)
end

local mode, skus, headers, plain_headers, interval, next_at, cart_size

-- Paced only: wrk looks for a global delay() after thread 1's init(), and calls it before every
-- request when present (an event-loop timer each time, so an unpaced run must not define it).
local function paced_delay()
  local now = now_ms()
  if not next_at then
    next_at = now
  end
  next_at = next_at + interval
  local wait = next_at - now
  if wait < 0 then
    return 0
  end
  return math.floor(wait)
end

function init(args)
  mode = args[1]
  skus = {}
  for line in io.lines(args[2]) do
    if line ~= "" then
      table.insert(skus, line)
    end
  end
  headers = { ["Authorization"] = "Bearer " .. args[3], ["Accept"] = "application/json" }
  -- The trivial endpoint is outside /api/, where a Bearer header is refused (403) before any view.
  plain_headers = { ["Accept"] = "application/json" }
  local rate = tonumber(args[4])
  local thread_count = tonumber(args[5])
  cart_size = tonumber(args[6])
  math.randomseed(tonumber(args[7]) + (number or 0))
  if rate > 0 then
    interval = 1000.0 * thread_count / rate
    delay = paced_delay
  end
end

function request()
  if mode == "recommendations" then
    local sku = skus[math.random(#skus)]
    return wrk.format("GET", "/api/v1/products/" .. sku .. "/recommendations/", headers)
  elseif mode == "cart" then
    local picked = {}
    for i = 1, cart_size do
      picked[i] = '"' .. skus[math.random(#skus)] .. '"'
    end
    local body = '{"skus": [' .. table.concat(picked, ", ") .. '], "touchpoint": "cart"}'
    local post_headers = { ["Content-Type"] = "application/json" }
    for name, value in pairs(headers) do
      post_headers[name] = value
    end
    return wrk.format("POST", "/api/v1/cart/recommendations/", post_headers, body)
  end
  return wrk.format("GET", nil, plain_headers)
end

function done(summary, latency, requests)
  local parts = {}
  for _, p in ipairs({ 50, 90, 99, 99.9 }) do
    table.insert(parts, string.format('"p%s_us": %d', (tostring(p):gsub("%.", "_")), latency:percentile(p)))
  end
  io.write(string.format(
    'WRK_JSON {"requests": %d, "duration_us": %d, "bytes": %d, "errors_connect": %d, "errors_read": %d, '
      .. '"errors_write": %d, "errors_status": %d, "errors_timeout": %d, "mean_us": %.1f, "max_us": %d, %s}\n',
    summary.requests, summary.duration, summary.bytes, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.status, summary.errors.timeout, latency.mean, latency.max,
    table.concat(parts, ", ")
  ))
end
