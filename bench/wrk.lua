-- wrk.lua: request shape and a machine-readable summary for bench/run.sh.
-- BENCH_POST_BYTES > 0: POST with a body of that many bytes; otherwise a plain GET.
-- done() prints one line "BENCHJSON {...}" that bench/report.py parses (latencies in µs).

local post_bytes = tonumber(os.getenv("BENCH_POST_BYTES") or "0") or 0
if post_bytes > 0 then
  wrk.method = "POST"
  wrk.body = string.rep("x", post_bytes)
  wrk.headers["Content-Type"] = "application/octet-stream"
end

-- BENCH_DELAY_MS > 0: each connection waits that long before each request, which holds the
-- load near connections*1000/BENCH_DELAY_MS req/s whatever the proxy (run.sh: RATE).
local delay_ms = tonumber(os.getenv("BENCH_DELAY_MS") or "0") or 0
if delay_ms > 0 then
  function delay()
    return delay_ms
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests":%d,"duration_us":%d,"bytes":%d,' ..
    '"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,"err_timeout":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"p999_us":%d,"mean_us":%.1f,"max_us":%d}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9), latency.mean, latency.max))
end
