module github.com/fhirserver/fhirserver

go 1.26.8
