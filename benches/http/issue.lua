-- wrk script: POSTs one pre-signed client assertion per request to the token endpoint.
-- Each wrk thread takes every n-th line of $BODIES (n = the number of threads), so no
-- assertion is sent twice: a replayed jti would be refused and counted as an error.
local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  bodies = {}
  for line in io.lines(os.getenv("BODIES")) do
    bodies[#bodies + 1] = line
  end
  step = tonumber(os.getenv("THREADS"))
  next_line = id + 1
end

function request()
  local body = bodies[next_line]
  next_line = next_line + step
  return wrk.format("POST", nil, { ["Content-Type"] = "application/x-www-form-urlencoded" }, body)
end
