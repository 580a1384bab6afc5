package fhir

// KindUnprocessable is a request that is well-formed but cannot be carried
// out on the resource as it stands: a patch whose operations do not apply,
// or whose result is not a valid resource (HTTP 422).
const KindUnprocessable Kind = "unprocessable"
