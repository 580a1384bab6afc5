-- GET B/fhir/Observation/ID, cycling through the ids in $IDS (one a line).
local ids = {}
for line in io.lines(os.getenv("IDS")) do ids[#ids+1] = line end
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", "/fhir/Observation/" .. ids[(i % #ids) + 1])
end
