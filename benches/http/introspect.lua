-- wrk script: introspects one agent token again and again, as a resource server does.
function init(args)
  body = "token=" .. os.getenv("AGENT_TOKEN")
  auth = "Bearer " .. os.getenv("CALLER_TOKEN")
end

function request()
  return wrk.format("POST", nil, {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["Authorization"] = auth,
  }, body)
end
