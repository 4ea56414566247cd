-- wrk script: POST the documented Smartsupp example, each request a new conversation
-- (a fresh channel.id). Usage: wrk -s bench/hook.lua URL -- BODY_FILE PATH [OFFSET]
-- (OFFSET 0-9 keeps the ids of several wrk processes started in the same second apart)
local prefix, suffix, path
local counter = 0
local base = 0

function init(args)
  local f = assert(io.open(args[1], "r"))
  local body = f:read("*a")
  f:close()
  path = args[2]
  local offset = tonumber(args[3] or "0")
  local s, e = string.find(body, '"id": 55039', 1, true)
  prefix = string.sub(body, 1, s - 1) .. '"id": '
  suffix = string.sub(body, e + 1)
  -- LuaJIT prints numbers with 14 significant digits: keep ids well below that.
  base = (os.time() % 1000000) * 10000000 + offset * 1000000
end

function request()
  counter = counter + 1
  return wrk.format("POST", path, { ["Content-Type"] = "application/json" },
    prefix .. (base + counter) .. suffix)
end
