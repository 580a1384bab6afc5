-- GET B/fhir/<$QUERY with {P} replaced by a patient id>, cycling through
-- the ids in $PATIENTS (one a line).
local pats = {}
for line in io.lines(os.getenv("PATIENTS")) do pats[#pats+1] = line end
local q = os.getenv("QUERY")
local i = 0
request = function()
  i = i + 1
  local path = "/fhir/" .. q:gsub("{P}", pats[(i % #pats) + 1])
  return wrk.format("GET", path)
end
