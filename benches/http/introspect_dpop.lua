-- wrk script: introspects one DPoP-bound agent token again and again, the caller presenting
-- its own bound token under the DPoP scheme with a fresh pre-signed proof each time. Each wrk
-- thread takes every n-th line of $PROOFS (n = the number of threads): a proof is used once.
-- Lines are read as they are needed rather than held in a table of half a million strings,
-- which wrk's garbage collector would walk on the server's cores.
local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  body = "token=" .. os.getenv("AGENT_TOKEN")
  auth = "DPoP " .. os.getenv("CALLER_TOKEN")
  proofs = io.open(os.getenv("PROOFS"))
  step = tonumber(os.getenv("THREADS"))
  for _ = 1, id do
    proofs:read("*l")
  end
end

function request()
  local proof = proofs:read("*l")
  for _ = 2, step do
    proofs:read("*l")
  end
  return wrk.format("POST", nil, {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["Authorization"] = auth,
    ["DPoP"] = proof,
  }, body)
end
