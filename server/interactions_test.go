package server_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/fhirserver/fhirserver/server"
	"github.com/fhirserver/fhirserver/server/servertest"
)

const (
	patientP1   = `{"resourceType":"Patient","id":"p1","name":[{"family":"One"}]}`
	patientP1v2 = `{"resourceType":"Patient","id":"p1","name":[{"family":"Two"}]}`
)

func TestCreate(t *testing.T) {
	servertest.Run(t, newHandler, []servertest.Scenario{
		{
			Name: "create", Method: http.MethodPost, Path: "/fhir/Patient", Header: fhirJSON,
			Body:               `{"resourceType":"Patient","name":[{"family":"Created"}]}`,
			ExpectStatus:       201,
			ExpectContains:     []string{`"resourceType":"Patient"`, `"versionId":"1"`, `"lastUpdated":"`, `"family":"Created"`},
			ExpectHeader:       hdr("ETag", `W/"1"`, "Content-Type", "application/fhir+json; charset=utf-8"),
			ExpectHeaderPrefix: hdr("Location", base+"/fhir/Patient/"),
			Check: func(t testing.TB, res *servertest.Response) {
				if !strings.HasSuffix(res.Header.Get("Location"), "/_history/1") {
					t.Errorf("Location %q does not name version 1", res.Header.Get("Location"))
				}
				if res.Header.Get("Last-Modified") == "" {
					t.Error("no Last-Modified")
				}
			},
			After: []servertest.Scenario{{
				Path: "/fhir/Patient/_history", ExpectStatus: 200,
				ExpectContains: []string{`"total":1`, `"method":"POST","url":"Patient"`, `"status":"201 Created"`},
			}},
		},
		{
			Name: "an id in the body is ignored", Method: http.MethodPost, Path: "/fhir/Patient", Header: fhirJSON,
			Body:              `{"resourceType":"Patient","id":"chosen-by-client"}`,
			ExpectStatus:      201,
			ExpectNotContains: []string{"chosen-by-client"},
			Check: func(t testing.TB, res *servertest.Response) {
				if strings.Contains(res.Header.Get("Location"), "chosen-by-client") {
					t.Errorf("Location %q uses the client's id", res.Header.Get("Location"))
				}
			},
			After: []servertest.Scenario{{Path: "/fhir/Patient/chosen-by-client", ExpectStatus: 404}},
		},
		{
			Name: "application/json with charset", Method: http.MethodPost, Path: "/fhir/Patient",
			Header: hdr("Content-Type", "application/json; charset=UTF-8"), Body: `{"resourceType":"Patient"}`,
			ExpectStatus: 201,
		},
		{
			Name: "application/fhir+json with fhirVersion", Method: http.MethodPost, Path: "/fhir/Patient",
			Header: hdr("Content-Type", "application/fhir+json; fhirVersion=4.0"), Body: `{"resourceType":"Patient"}`,
			ExpectStatus: 201,
		},
		{
			Name: "Prefer return=minimal", Method: http.MethodPost, Path: "/fhir/Patient",
			Header: hdr("Content-Type", "application/fhir+json", "Prefer", "return=minimal"), Body: `{"resourceType":"Patient"}`,
			ExpectStatus: 201, ExpectHeader: hdr("ETag", `W/"1"`), ExpectHeaderPrefix: hdr("Location", base+"/fhir/Patient/"),
			Check: func(t testing.TB, res *servertest.Response) {
				if res.Body != "" {
					t.Errorf("body %q, want none", res.Body)
				}
			},
		},
		{
			Name: "Prefer return=representation", Method: http.MethodPost, Path: "/fhir/Patient",
			Header: hdr("Content-Type", "application/fhir+json", "Prefer", "return=representation"), Body: `{"resourceType":"Patient"}`,
			ExpectStatus: 201, ExpectContains: []string{`"resourceType":"Patient"`},
		},
		{
			Name: "Prefer return=OperationOutcome", Method: http.MethodPost, Path: "/fhir/Patient",
			Header: hdr("Content-Type", "application/fhir+json", "Prefer", "handling=strict, return=OperationOutcome"), Body: `{"resourceType":"Patient"}`,
			ExpectStatus: 201, ExpectContains: []string{`"resourceType":"OperationOutcome"`, `"severity":"information"`, "created Patient/"},
			ExpectHeaderPrefix: hdr("Location", base+"/fhir/Patient/"),
		},
		{
			Name: "pretty", Method: http.MethodPost, Path: "/fhir/Patient?_pretty=true", Header: fhirJSON,
			Body: `{"resourceType":"Patient","active":true}`, ExpectStatus: 201,
			ExpectContains: []string{"{\n  \"resourceType\": \"Patient\",", "\n  \"active\": true"},
		},
	})
}

// Each bad create is a 4xx OperationOutcome naming the problem, and nothing
// is stored.
func TestCreateRefused(t *testing.T) {
	post := func(name, path, contentType, body string, status int, code, msg string) servertest.Scenario {
		return servertest.Scenario{
			Name: name, Method: http.MethodPost, Path: path, Header: hdr("Content-Type", contentType), Body: body,
			ExpectStatus: status, Check: expectOutcome(code, msg), After: nothingStored(),
		}
	}
	const ct = "application/fhir+json"
	servertest.Run(t, newHandler, []servertest.Scenario{
		post("invalid JSON", "/fhir/Patient", ct, `{"resourceType":"Patient",`, 400, "invalid", "not valid JSON"),
		post("trailing data", "/fhir/Patient", ct, `{"resourceType":"Patient"} {}`, 400, "invalid", "not valid JSON"),
		post("not an object", "/fhir/Patient", ct, `["resourceType","Patient"]`, 400, "invalid", "JSON object"),
		post("empty body", "/fhir/Patient", ct, ``, 400, "invalid", "body is empty"),
		post("invalid UTF-8", "/fhir/Patient", ct, "{\"resourceType\":\"Patient\",\"gender\":\"\xff\"}", 400, "invalid", "UTF-8"),
		post("duplicate property", "/fhir/Patient", ct, `{"resourceType":"Patient","active":true,"active":false}`, 400, "invalid", "duplicate"),
		post("missing resourceType", "/fhir/Patient", ct, `{"name":[{"family":"X"}]}`, 400, "invalid", "no resourceType"),
		post("wrong resourceType", "/fhir/Patient", ct, `{"resourceType":"Observation","status":"final"}`, 400, "invalid",
			`resourceType "Observation" does not match the type "Patient" of the URL`),
		post("unknown type in URL", "/fhir/Bogus", ct, `{"resourceType":"Bogus"}`, 404, "not-found", `unknown resource type "Bogus"`),
		post("XML", "/fhir/Patient", "application/fhir+xml", `<Patient xmlns="http://hl7.org/fhir"/>`, 415, "not-supported", "application/fhir+xml"),
		post("form", "/fhir/Patient", "application/x-www-form-urlencoded", `resourceType=Patient`, 415, "not-supported", "not supported"),
		post("text", "/fhir/Patient", "text/plain", `{"resourceType":"Patient"}`, 415, "not-supported", "not supported"),
		post("no Content-Type", "/fhir/Patient", "", `{"resourceType":"Patient"}`, 415, "not-supported", "Content-Type is missing"),
		post("charset other than UTF-8", "/fhir/Patient", "application/fhir+json; charset=iso-8859-1", `{"resourceType":"Patient"}`, 415, "not-supported", "iso-8859-1"),
		post("FHIR version other than R4", "/fhir/Patient", "application/fhir+json; fhirVersion=5.0", `{"resourceType":"Patient"}`, 415, "not-supported", "not supported"),
		{
			Name: "XML asked for in _format", Method: http.MethodPost, Path: "/fhir/Patient?_format=xml", Header: fhirJSON,
			Body: `{"resourceType":"Patient"}`, ExpectStatus: 406, Check: expectOutcome("not-supported", "_format"), After: nothingStored(),
		},
		{
			Name: "XML asked for in Accept", Method: http.MethodPost, Path: "/fhir/Patient",
			Header: hdr("Content-Type", "application/fhir+json", "Accept", "application/fhir+xml"),
			Body:   `{"resourceType":"Patient"}`, ExpectStatus: 406, Check: expectOutcome("not-supported", "Accept"), After: nothingStored(),
		},
	})
}

func TestCreateTooLarge(t *testing.T) {
	body := `{"resourceType":"Patient","name":[{"family":"` + strings.Repeat("x", 2000) + `"}]}`
	h := newServer(t, func(d *server.Deps) { d.MaxBody = 1024 })

	// With a declared length the request is refused before it is read.
	servertest.Scenario{
		Name: "declared length", Method: http.MethodPost, Path: "/fhir/Patient", Header: fhirJSON, Body: body,
		ExpectStatus: 413, Check: expectOutcome("too-costly", "limit of 1024 bytes"), After: nothingStored(),
	}.Do(t, h)

	// Without one (chunked) the MaxBytesReader stops the read.
	req := httptest.NewRequest(http.MethodPost, "/fhir/Patient", io.MultiReader(strings.NewReader(body)))
	req.ContentLength = -1
	req.Header.Set("Content-Type", "application/fhir+json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 413 || !strings.Contains(rec.Body.String(), "limit of 1024 bytes") {
		t.Errorf("chunked: status %d, body %s", rec.Code, rec.Body.String())
	}
	for _, sc := range nothingStored() {
		sc.Do(t, h)
	}

	// A body under the limit is fine.
	servertest.Scenario{
		Name: "under the limit", Method: http.MethodPost, Path: "/fhir/Patient", Header: fhirJSON,
		Body: `{"resourceType":"Patient"}`, ExpectStatus: 201,
	}.Do(t, h)
}

// The default limit is 32 MiB: a body just over it is refused.
func TestCreateDefaultLimit(t *testing.T) {
	h := newServer(t)
	big := `{"resourceType":"Patient","name":[{"family":"` + strings.Repeat("x", 32<<20) + `"}]}`
	servertest.Scenario{
		Name: "33 MiB", Method: http.MethodPost, Path: "/fhir/Patient", Header: fhirJSON, Body: big,
		ExpectStatus: 413, Check: expectOutcome("too-costly", "limit of 33554432 bytes"), After: nothingStored(),
	}.Do(t, h)
}

func TestCreateThenRead(t *testing.T) {
	h := newServer(t)
	created := do(t, h, http.MethodPost, "/fhir/Observation",
		`{"resourceType":"Observation","status":"final","code":{"text":"weight"}}`, "Content-Type", "application/fhir+json")
	if created.Code != 201 {
		t.Fatalf("create: %d %s", created.Code, created.Body.String())
	}
	loc := created.Header().Get("Location")
	path := strings.TrimPrefix(loc, base)
	id := strings.Split(strings.TrimPrefix(path, "/fhir/Observation/"), "/")[0]
	if path == loc || id == "" {
		t.Fatalf("Location %q is not under %s/fhir/Observation", loc, base)
	}
	servertest.Scenario{
		Name: "read the created resource", Path: "/fhir/Observation/" + id,
		ExpectStatus: 200, ExpectContains: []string{`"id":"` + id + `"`, `"versionId":"1"`, `"text":"weight"`},
		ExpectHeader: hdr("ETag", `W/"1"`, "Last-Modified", created.Header().Get("Last-Modified")),
		Check: func(t testing.TB, res *servertest.Response) {
			if res.Body != created.Body.String() {
				t.Errorf("read body differs from create body:\n%s\n%s", res.Body, created.Body.String())
			}
		},
	}.Do(t, h)
	servertest.Scenario{
		Name: "vread via Location", Path: path,
		ExpectStatus: 200, ExpectContains: []string{`"id":"` + id + `"`},
	}.Do(t, h)
}

func TestRead(t *testing.T) {
	before := []servertest.Scenario{put("/fhir/Patient/p1", patientP1)}
	servertest.Run(t, newHandler, []servertest.Scenario{
		{
			Name: "read", Path: "/fhir/Patient/p1", Before: before,
			ExpectStatus:   200,
			ExpectContains: []string{`{"resourceType":"Patient","id":"p1","meta":{"versionId":"1","lastUpdated":"`, `"family":"One"`},
			ExpectHeader:   hdr("ETag", `W/"1"`, "Content-Type", "application/fhir+json; charset=utf-8"),
		},
		{
			Name: "read as application/json via Accept", Path: "/fhir/Patient/p1", Before: before,
			Header:       hdr("Accept", "application/json"),
			ExpectStatus: 200, ExpectHeader: hdr("Content-Type", "application/json; charset=utf-8"),
		},
		{
			Name: "read with a browser's Accept", Path: "/fhir/Patient/p1", Before: before,
			Header:       hdr("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
			ExpectStatus: 200, ExpectHeader: hdr("Content-Type", "application/fhir+json; charset=utf-8"),
		},
		{
			Name: "Accept prefers fhir+json by q", Path: "/fhir/Patient/p1", Before: before,
			Header:       hdr("Accept", "application/json;q=0.5, application/fhir+json"),
			ExpectStatus: 200, ExpectHeader: hdr("Content-Type", "application/fhir+json; charset=utf-8"),
		},
		{
			Name: "_format=json", Path: "/fhir/Patient/p1?_format=json", Before: before,
			ExpectStatus: 200, ExpectHeader: hdr("Content-Type", "application/fhir+json; charset=utf-8"),
		},
		{
			Name: "_format=application/json overrides Accept", Path: "/fhir/Patient/p1?_format=application/json", Before: before,
			Header:       hdr("Accept", "application/fhir+xml"),
			ExpectStatus: 200, ExpectHeader: hdr("Content-Type", "application/json; charset=utf-8"),
		},
		{
			Name: "_format=application/fhir+json unencoded", Path: "/fhir/Patient/p1?_format=application/fhir+json", Before: before,
			ExpectStatus: 200, ExpectHeader: hdr("Content-Type", "application/fhir+json; charset=utf-8"),
		},
		{
			Name: "_format=xml", Path: "/fhir/Patient/p1?_format=xml", Before: before,
			ExpectStatus: 406, Check: expectOutcome("not-supported", `_format "xml" is not supported`),
		},
		{
			Name: "_format=application/fhir+xml", Path: "/fhir/Patient/p1?_format=application%2Ffhir%2Bxml", Before: before,
			ExpectStatus: 406, Check: expectOutcome("not-supported", "_format"),
		},
		{
			Name: "Accept XML only", Path: "/fhir/Patient/p1", Before: before, Header: hdr("Accept", "application/fhir+xml"),
			ExpectStatus: 406, Check: expectOutcome("not-supported", "Accept"),
		},
		{
			Name: "pretty", Path: "/fhir/Patient/p1?_pretty=true", Before: before,
			ExpectStatus: 200, ExpectContains: []string{"{\n  \"resourceType\": \"Patient\",\n  \"id\": \"p1\","},
		},
		{
			Name: "not pretty", Path: "/fhir/Patient/p1?_pretty=false", Before: before,
			ExpectStatus: 200, ExpectContains: []string{`{"resourceType":"Patient","id":"p1",`},
		},
		{
			Name: "HEAD", Method: http.MethodHead, Path: "/fhir/Patient/p1", Before: before,
			ExpectStatus: 200, ExpectHeader: hdr("ETag", `W/"1"`),
			Check: func(t testing.TB, res *servertest.Response) {
				if res.Body != "" {
					t.Errorf("HEAD has a body: %s", res.Body)
				}
			},
		},
		{
			Name: "missing", Path: "/fhir/Patient/nobody",
			ExpectStatus: 404, Check: expectOutcome("not-found", "Patient/nobody"),
		},
		{
			Name: "invalid id", Path: "/fhir/Patient/a_b",
			ExpectStatus: 400, Check: expectOutcome("invalid", `"a_b" is not a valid resource id`),
		},
		{
			Name: "id too long", Path: "/fhir/Patient/" + strings.Repeat("a", 65),
			ExpectStatus: 400, Check: expectOutcome("invalid", "is not a valid resource id"),
		},
		{
			Name: "unknown type", Path: "/fhir/Bogus/p1",
			ExpectStatus: 404, Check: expectOutcome("not-found", `unknown resource type "Bogus"`),
		},
		{
			Name: "abstract type is not served", Path: "/fhir/DomainResource/p1",
			ExpectStatus: 404, Check: expectOutcome("not-found", "unknown resource type"),
		},
	})
}

func TestConditionalRead(t *testing.T) {
	before := []servertest.Scenario{put("/fhir/Patient/p1", patientP1)}
	notModified := func(t testing.TB, res *servertest.Response) {
		if res.Body != "" {
			t.Errorf("304 with a body: %s", res.Body)
		}
	}
	servertest.Run(t, newHandler, []servertest.Scenario{
		{
			Name: "If-None-Match current", Path: "/fhir/Patient/p1", Before: before, Header: hdr("If-None-Match", `W/"1"`),
			ExpectStatus: 304, ExpectHeader: hdr("ETag", `W/"1"`), Check: notModified,
		},
		{
			Name: "If-None-Match strong form", Path: "/fhir/Patient/p1", Before: before, Header: hdr("If-None-Match", `"1"`),
			ExpectStatus: 304,
		},
		{
			Name: "If-None-Match list", Path: "/fhir/Patient/p1", Before: before, Header: hdr("If-None-Match", `W/"7", W/"1"`),
			ExpectStatus: 304,
		},
		{
			Name: "If-None-Match star", Path: "/fhir/Patient/p1", Before: before, Header: hdr("If-None-Match", `*`),
			ExpectStatus: 304,
		},
		{
			Name: "If-None-Match stale", Path: "/fhir/Patient/p1",
			Before:       []servertest.Scenario{put("/fhir/Patient/p1", patientP1), put("/fhir/Patient/p1", patientP1v2)},
			Header:       hdr("If-None-Match", `W/"1"`),
			ExpectStatus: 200, ExpectHeader: hdr("ETag", `W/"2"`), ExpectContains: []string{`"family":"Two"`},
		},
		{
			Name: "If-None-Match malformed", Path: "/fhir/Patient/p1", Before: before, Header: hdr("If-None-Match", `W/"one"`),
			ExpectStatus: 400, Check: expectOutcome("invalid", "If-None-Match"), ExpectHeader: hdr("ETag", ""),
		},
		{
			Name: "If-None-Match on vread", Path: "/fhir/Patient/p1/_history/1", Before: before, Header: hdr("If-None-Match", `W/"1"`),
			ExpectStatus: 304,
		},
		{
			Name: "If-Modified-Since in the future", Path: "/fhir/Patient/p1", Before: before,
			Header: hdr("If-Modified-Since", "Fri, 01 Jan 2100 00:00:00 GMT"), ExpectStatus: 304, Check: notModified,
		},
		{
			Name: "If-Modified-Since in the past", Path: "/fhir/Patient/p1", Before: before,
			Header: hdr("If-Modified-Since", "Sat, 01 Jan 2000 00:00:00 GMT"), ExpectStatus: 200,
		},
		{
			Name: "If-Modified-Since malformed is ignored", Path: "/fhir/Patient/p1", Before: before,
			Header: hdr("If-Modified-Since", "yesterday"), ExpectStatus: 200,
		},
		{
			Name: "If-None-Match wins over If-Modified-Since", Path: "/fhir/Patient/p1", Before: before,
			Header: hdr("If-None-Match", `W/"9"`, "If-Modified-Since", "Fri, 01 Jan 2100 00:00:00 GMT"), ExpectStatus: 200,
		},
	})
}

// If-Modified-Since equal to Last-Modified is 304: HTTP dates have whole
// seconds, lastUpdated has microseconds.
func TestIfModifiedSinceSameSecond(t *testing.T) {
	h := newServer(t)
	res := do(t, h, http.MethodPut, "/fhir/Patient/p1", patientP1, "Content-Type", "application/fhir+json")
	lm := res.Header().Get("Last-Modified")
	if res.Code != 201 || lm == "" {
		t.Fatalf("put: %d, Last-Modified %q", res.Code, lm)
	}
	servertest.Scenario{Name: "same second", Path: "/fhir/Patient/p1", Header: hdr("If-Modified-Since", lm), ExpectStatus: 304}.Do(t, h)
}

func TestVRead(t *testing.T) {
	twoVersions := []servertest.Scenario{put("/fhir/Patient/p1", patientP1), put("/fhir/Patient/p1", patientP1v2)}
	servertest.Run(t, newHandler, []servertest.Scenario{
		{
			Name: "old version", Path: "/fhir/Patient/p1/_history/1", Before: twoVersions,
			ExpectStatus: 200, ExpectContains: []string{`"versionId":"1"`, `"family":"One"`}, ExpectNotContains: []string{"Two"},
			ExpectHeader: hdr("ETag", `W/"1"`),
		},
		{
			Name: "current version", Path: "/fhir/Patient/p1/_history/2", Before: twoVersions,
			ExpectStatus: 200, ExpectContains: []string{`"versionId":"2"`, `"family":"Two"`}, ExpectHeader: hdr("ETag", `W/"2"`),
		},
		{
			Name: "no such version", Path: "/fhir/Patient/p1/_history/3", Before: twoVersions,
			ExpectStatus: 404, Check: expectOutcome("not-found", "no version 3"),
		},
		{
			Name: "no such resource", Path: "/fhir/Patient/p9/_history/1",
			ExpectStatus: 404, Check: expectOutcome("not-found", "Patient/p9"),
		},
		{
			Name: "version not a number", Path: "/fhir/Patient/p1/_history/abc", Before: twoVersions,
			ExpectStatus: 400, Check: expectOutcome("invalid", "not a valid version id"),
		},
		{
			Name: "version zero", Path: "/fhir/Patient/p1/_history/0", Before: twoVersions,
			ExpectStatus: 400, Check: expectOutcome("invalid", "not a valid version id"),
		},
		{
			Name: "deleted version", Path: "/fhir/Patient/p1/_history/3",
			Before:       append(twoVersions, servertest.Scenario{Method: http.MethodDelete, Path: "/fhir/Patient/p1", ExpectStatus: 204}),
			ExpectStatus: 410, Check: expectOutcome("deleted", "deletion"), ExpectHeader: hdr("ETag", `W/"3"`),
		},
		{
			Name: "invalid id", Path: "/fhir/Patient/a$b/_history/1",
			ExpectStatus: 400, Check: expectOutcome("invalid", "not a valid resource id"),
		},
		{
			Name: "unknown type", Path: "/fhir/Bogus/p1/_history/1",
			ExpectStatus: 404, Check: expectOutcome("not-found", "unknown resource type"),
		},
	})
}

func TestUpdate(t *testing.T) {
	v1 := []servertest.Scenario{put("/fhir/Patient/p1", patientP1)}
	readV1 := []servertest.Scenario{{
		Name: "still version 1", Path: "/fhir/Patient/p1", ExpectStatus: 200,
		ExpectHeader: hdr("ETag", `W/"1"`), ExpectContains: []string{`"family":"One"`},
	}}
	servertest.Run(t, newHandler, []servertest.Scenario{
		{
			Name: "update as create", Method: http.MethodPut, Path: "/fhir/Patient/p1", Header: fhirJSON, Body: patientP1,
			ExpectStatus:   201,
			ExpectContains: []string{`"id":"p1"`, `"versionId":"1"`},
			ExpectHeader:   hdr("ETag", `W/"1"`, "Location", base+"/fhir/Patient/p1/_history/1"),
			After:          readV1,
		},
		{
			Name: "update", Method: http.MethodPut, Path: "/fhir/Patient/p1", Header: fhirJSON, Body: patientP1v2, Before: v1,
			ExpectStatus:   200,
			ExpectContains: []string{`"versionId":"2"`, `"family":"Two"`},
			ExpectHeader:   hdr("ETag", `W/"2"`, "Location", ""),
			After: []servertest.Scenario{{
				Path: "/fhir/Patient/p1", ExpectStatus: 200, ExpectContains: []string{`"family":"Two"`}, ExpectHeader: hdr("ETag", `W/"2"`),
			}},
		},
		{
			Name: "update without change keeps the version", Method: http.MethodPut, Path: "/fhir/Patient/p1", Header: fhirJSON,
			Body: patientP1, Before: v1, ExpectStatus: 200, ExpectHeader: hdr("ETag", `W/"1"`),
		},
		{
			Name: "If-Match current", Method: http.MethodPut, Path: "/fhir/Patient/p1", Body: patientP1v2, Before: v1,
			Header:       hdr("Content-Type", "application/fhir+json", "If-Match", `W/"1"`),
			ExpectStatus: 200, ExpectHeader: hdr("ETag", `W/"2"`),
		},
		{
			Name: "If-Match stale", Method: http.MethodPut, Path: "/fhir/Patient/p1", Body: patientP1v2, Before: v1,
			Header:       hdr("Content-Type", "application/fhir+json", "If-Match", `W/"5"`),
			ExpectStatus: 412, Check: expectOutcome("conflict", "version conflict"), After: readV1,
		},
		{
			Name: "If-Match on a missing resource", Method: http.MethodPut, Path: "/fhir/Patient/p1", Body: patientP1,
			Header:       hdr("Content-Type", "application/fhir+json", "If-Match", `W/"1"`),
			ExpectStatus: 412, Check: expectOutcome("conflict", "does not exist"), After: nothingStored(),
		},
		{
			Name: "If-Match malformed", Method: http.MethodPut, Path: "/fhir/Patient/p1", Body: patientP1v2, Before: v1,
			Header:       hdr("Content-Type", "application/fhir+json", "If-Match", `W/"x"`),
			ExpectStatus: 400, Check: expectOutcome("invalid", "If-Match"), After: readV1,
		},
		{
			Name: "If-Match star", Method: http.MethodPut, Path: "/fhir/Patient/p1", Body: patientP1v2, Before: v1,
			Header:       hdr("Content-Type", "application/fhir+json", "If-Match", `*`),
			ExpectStatus: 400, Check: expectOutcome("invalid", "If-Match"), After: readV1,
		},
		{
			Name: "Prefer return=minimal", Method: http.MethodPut, Path: "/fhir/Patient/p1", Body: patientP1v2, Before: v1,
			Header:       hdr("Content-Type", "application/fhir+json", "Prefer", "return=minimal"),
			ExpectStatus: 200, ExpectHeader: hdr("ETag", `W/"2"`),
			Check: func(t testing.TB, res *servertest.Response) {
				if res.Body != "" {
					t.Errorf("body %q, want none", res.Body)
				}
			},
		},
		{
			Name: "Prefer return=OperationOutcome", Method: http.MethodPut, Path: "/fhir/Patient/p1", Body: patientP1v2, Before: v1,
			Header:       hdr("Content-Type", "application/fhir+json", "Prefer", "return=OperationOutcome"),
			ExpectStatus: 200, ExpectContains: []string{`"resourceType":"OperationOutcome"`, "updated Patient/p1, version 2"},
		},
		{
			Name: "recreate after delete", Method: http.MethodPut, Path: "/fhir/Patient/p1", Header: fhirJSON, Body: patientP1v2,
			Before:       append(v1, servertest.Scenario{Method: http.MethodDelete, Path: "/fhir/Patient/p1", ExpectStatus: 204}),
			ExpectStatus: 201, ExpectHeader: hdr("ETag", `W/"3"`, "Location", base+"/fhir/Patient/p1/_history/3"),
		},
	})
}

// Each bad update is a 4xx OperationOutcome naming the problem; the stored
// version (or the absence of one) is unchanged.
func TestUpdateRefused(t *testing.T) {
	v1 := []servertest.Scenario{put("/fhir/Patient/p1", patientP1)}
	unchanged := []servertest.Scenario{{
		Name: "unchanged", Path: "/fhir/Patient/p1/_history", ExpectStatus: 200,
		ExpectContains: []string{`"total":1`, `"family":"One"`}, ExpectNotContains: []string{"Two"},
	}}
	servertest.Run(t, newHandler, []servertest.Scenario{
		{
			Name: "id mismatch", Method: http.MethodPut, Path: "/fhir/Patient/p1", Header: fhirJSON, Before: v1,
			Body:         `{"resourceType":"Patient","id":"p2","name":[{"family":"Two"}]}`,
			ExpectStatus: 400, Check: expectOutcome("invalid", `the resource id "p2" does not match the id "p1" of the URL`),
			After: append(unchanged, servertest.Scenario{Name: "p2 not created", Path: "/fhir/Patient/p2", ExpectStatus: 404}),
		},
		{
			Name: "id mismatch on create", Method: http.MethodPut, Path: "/fhir/Patient/p1", Header: fhirJSON,
			Body:         `{"resourceType":"Patient","id":"p2"}`,
			ExpectStatus: 400, Check: expectOutcome("invalid", "does not match the id"), After: nothingStored(),
		},
		{
			Name: "missing id", Method: http.MethodPut, Path: "/fhir/Patient/p1", Header: fhirJSON, Before: v1,
			Body:         `{"resourceType":"Patient","name":[{"family":"Two"}]}`,
			ExpectStatus: 400, Check: expectOutcome("invalid", "has no id"), After: unchanged,
		},
		{
			Name: "wrong resourceType", Method: http.MethodPut, Path: "/fhir/Patient/p1", Header: fhirJSON, Before: v1,
			Body:         `{"resourceType":"Observation","id":"p1","status":"final"}`,
			ExpectStatus: 400, Check: expectOutcome("invalid", `resourceType "Observation" does not match`), After: unchanged,
		},
		{
			Name: "invalid JSON", Method: http.MethodPut, Path: "/fhir/Patient/p1", Header: fhirJSON, Before: v1,
			Body:         `{"resourceType":"Patient","id":"p1","name":[{"family":"Two"}]`,
			ExpectStatus: 400, Check: expectOutcome("invalid", "not valid JSON"), After: unchanged,
		},
		{
			Name: "invalid id in URL", Method: http.MethodPut, Path: "/fhir/Patient/a_b", Header: fhirJSON,
			Body:         `{"resourceType":"Patient","id":"a_b"}`,
			ExpectStatus: 400, Check: expectOutcome("invalid", "not a valid resource id"), After: nothingStored(),
		},
		{
			Name: "unknown type in URL", Method: http.MethodPut, Path: "/fhir/Bogus/p1", Header: fhirJSON,
			Body:         `{"resourceType":"Bogus","id":"p1"}`,
			ExpectStatus: 404, Check: expectOutcome("not-found", "unknown resource type"), After: nothingStored(),
		},
		{
			Name: "unsupported media type", Method: http.MethodPut, Path: "/fhir/Patient/p1", Before: v1,
			Header: hdr("Content-Type", "application/xml"), Body: `<Patient/>`,
			ExpectStatus: 415, Check: expectOutcome("not-supported", "application/xml"), After: unchanged,
		},
		{
			Name: "not acceptable", Method: http.MethodPut, Path: "/fhir/Patient/p1", Before: v1,
			Header: hdr("Content-Type", "application/fhir+json", "Accept", "application/fhir+xml"), Body: patientP1v2,
			ExpectStatus: 406, Check: expectOutcome("not-supported", "Accept"), After: unchanged,
		},
	})
}

func TestDelete(t *testing.T) {
	v1 := []servertest.Scenario{put("/fhir/Patient/p1", patientP1)}
	servertest.Run(t, newHandler, []servertest.Scenario{
		{
			Name: "delete", Method: http.MethodDelete, Path: "/fhir/Patient/p1", Before: v1,
			ExpectStatus: 204, ExpectHeader: hdr("ETag", `W/"2"`),
			After: []servertest.Scenario{
				{
					Name: "read is gone", Path: "/fhir/Patient/p1", ExpectStatus: 410,
					Check: expectOutcome("deleted", "Patient/p1 was deleted"), ExpectHeader: hdr("ETag", `W/"2"`),
				},
				{
					Name: "old version still readable", Path: "/fhir/Patient/p1/_history/1", ExpectStatus: 200,
					ExpectContains: []string{`"family":"One"`},
				},
				{
					Name: "history keeps it", Path: "/fhir/Patient/p1/_history", ExpectStatus: 200,
					ExpectContains: []string{`"total":2`, `"method":"DELETE","url":"Patient/p1"`, `"etag":"W/\"2\""`},
				},
				{
					Name: "deleting again succeeds", Method: http.MethodDelete, Path: "/fhir/Patient/p1", ExpectStatus: 204,
					ExpectHeader: hdr("ETag", ""),
				},
			},
		},
		{
			Name: "delete missing", Method: http.MethodDelete, Path: "/fhir/Patient/nobody",
			ExpectStatus: 204, After: nothingStored(),
		},
		{
			Name: "If-Match current", Method: http.MethodDelete, Path: "/fhir/Patient/p1", Before: v1,
			Header: hdr("If-Match", `W/"1"`), ExpectStatus: 204,
			After: []servertest.Scenario{{Path: "/fhir/Patient/p1", ExpectStatus: 410}},
		},
		{
			Name: "If-Match stale", Method: http.MethodDelete, Path: "/fhir/Patient/p1", Before: v1,
			Header: hdr("If-Match", `W/"4"`), ExpectStatus: 412, Check: expectOutcome("conflict", "version conflict"),
			After: []servertest.Scenario{{Path: "/fhir/Patient/p1", ExpectStatus: 200}},
		},
		{
			Name: "If-Match malformed", Method: http.MethodDelete, Path: "/fhir/Patient/p1", Before: v1,
			Header: hdr("If-Match", `version one`), ExpectStatus: 400, Check: expectOutcome("invalid", "If-Match"),
			After: []servertest.Scenario{{Path: "/fhir/Patient/p1", ExpectStatus: 200}},
		},
		{
			Name: "Prefer return=OperationOutcome", Method: http.MethodDelete, Path: "/fhir/Patient/p1", Before: v1,
			Header: hdr("Prefer", "return=OperationOutcome"), ExpectStatus: 200,
			ExpectContains: []string{`"resourceType":"OperationOutcome"`, `"severity":"information"`, "deleted Patient/p1"},
		},
		{
			Name: "invalid id", Method: http.MethodDelete, Path: "/fhir/Patient/a_b",
			ExpectStatus: 400, Check: expectOutcome("invalid", "not a valid resource id"),
		},
		{
			Name: "unknown type", Method: http.MethodDelete, Path: "/fhir/Bogus/p1",
			ExpectStatus: 404, Check: expectOutcome("not-found", "unknown resource type"),
		},
	})
}
