-- wrk script: POSTs one pre-signed client assertion per request to the token endpoint, with
-- the pre-signed DPoP proof of the same line when $PROOFS names a file of them.
-- Each wrk thread takes every n-th line of $BODIES (n = the number of threads), so no
-- assertion (or proof) is sent twice: a replayed jti would be refused and counted as an error.
local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

local function lines(path)
  local all = {}
  for line in io.lines(path) do
    all[#all + 1] = line
  end
  return all
end

function init(args)
  bodies = lines(os.getenv("BODIES"))
  local proofs_path = os.getenv("PROOFS")
  if proofs_path and proofs_path ~= "" then
    proofs = lines(proofs_path)
  end
  step = tonumber(os.getenv("THREADS"))
  next_line = id + 1
end

function request()
  local body = bodies[next_line]
  local headers = { ["Content-Type"] = "application/x-www-form-urlencoded" }
  if proofs then
    headers["DPoP"] = proofs[next_line]
  end
  next_line = next_line + step
  return wrk.format("POST", nil, headers, body)
end
