-- POST B/fhir/Observation with a 1 KB vital-signs Observation.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/fhir+json"
wrk.body = '{"resourceType":"Observation","status":"final","category":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"vital-signs","display":"vital-signs"}]}],"code":{"coding":[{"system":"http://loinc.org","code":"8302-2","display":"Body Height"}],"text":"Body Height"},"subject":{"reference":"Patient/bench-patient"},"effectiveDateTime":"2012-11-17T07:10:38-05:00","issued":"2012-11-17T07:10:38.739-05:00","valueQuantity":{"value":176.35499866729558,"unit":"cm","system":"http://unitsofmeasure.org","code":"cm"}}'
request = function()
  return wrk.format(nil, "/fhir/Observation")
end
