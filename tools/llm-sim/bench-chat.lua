-- bench-chat.lua — wrk script for tools/llm-sim/bench.sh: POSTs chat completions whose
-- prompts differ per request (pair N + three catalog lines), like a refresh run does.
local n = 0
local head = '{"model":"ragtide-sim","temperature":0,"messages":[' ..
  '{"role":"system","content":"Predict the next novel interest cluster. Answer with one description."},' ..
  '{"role":"user","content":"pair '
local tail = '\\nThe user watched:\\njazz, blues\\nrock, guitar, live\\n' ..
  'Recently popular after these two:\\ncats, funny\\nAnswer:"}]}'
request = function()
  n = n + 1
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, head .. n .. tail)
end
