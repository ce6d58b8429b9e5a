-- wrk script: registration POSTs, each with its own session cookie + CSRF token and a unique email.
-- Pairs come from FOYER_BENCH_TOKENS ("cookie<TAB>token" lines, made by bench/_common.py:csrf_pairs);
-- thread i of n uses pairs i, i+n, i+2n, ... and wraps around (the count of wraps is printed at the end).
local counter = 0
local pairs_ = {}
wraps = 0

local function urlencode(s)
  return (s:gsub("[^%w%-%._~]", function(c) return string.format("%%%02X", string.byte(c)) end))
end

function setup(thread)
  thread:set("id", thread_count or 0)
  thread_count = (thread_count or 0) + 1
  threads = threads or {}
  table.insert(threads, thread)
end

function init(args)
  local path = os.getenv("FOYER_BENCH_TOKENS")
  for line in io.lines(path) do
    local cookie, token = line:match("^([^\t]+)\t([^\t]+)$")
    if cookie then table.insert(pairs_, {cookie, token}) end
  end
  nthreads = tonumber(os.getenv("FOYER_BENCH_THREADS") or "1")
  post_path = os.getenv("FOYER_BENCH_PATH")
  run_tag = os.getenv("FOYER_BENCH_RUN") or "r"
  cookie_name = os.getenv("FOYER_BENCH_COOKIE") or "session"
end

function request()
  local index = id + nthreads * counter
  if index >= #pairs_ then wraps = wraps + 1 end
  local pair = pairs_[(index % #pairs_) + 1]
  counter = counter + 1
  local email = "p" .. run_tag .. "-" .. id .. "-" .. counter .. "@example.org"
  local body = "csrf_token=" .. urlencode(pair[2]) .. "&first_name=Bench&last_name=Person&email=" .. urlencode(email)
    .. "&timezone=Europe%2FBerlin&consent=y"
  return wrk.format("POST", post_path, {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["Cookie"] = cookie_name .. "=" .. pair[1],
  }, body)
end

function done(summary, latency, requests)
  local total = 0
  for _, t in ipairs(threads) do total = total + (t:get("wraps") or 0) end
  io.write(string.format("token_wraps: %d\n", total))
end
