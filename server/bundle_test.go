package server_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/fhirserver/fhirserver/server"
	"github.com/fhirserver/fhirserver/server/servertest"
)

// Bundles are built from entries written as JSON text.

func txBundle(entries ...string) string { return bundleOf("transaction", entries...) }

func batchBundle(entries ...string) string { return bundleOf("batch", entries...) }

func bundleOf(typ string, entries ...string) string {
	return `{"resourceType":"Bundle","type":"` + typ + `","entry":[` + strings.Join(entries, ",") + `]}`
}

// entryOf is a Bundle entry: fullUrl (may be ""), resource (may be ""),
// and the request members after method and url (may be "").
func entryOf(fullURL, method, url, resource, request string) string {
	var b strings.Builder
	b.WriteString("{")
	if fullURL != "" {
		b.WriteString(`"fullUrl":"` + fullURL + `",`)
	}
	if resource != "" {
		b.WriteString(`"resource":` + resource + `,`)
	}
	b.WriteString(`"request":{"method":"` + method + `","url":"` + url + `"`)
	if request != "" {
		b.WriteString("," + request)
	}
	b.WriteString("}}")
	return b.String()
}

// responseBundle is a batch-response or transaction-response as a client
// reads it.
type responseBundle struct {
	ResourceType string `json:"resourceType"`
	Type         string `json:"type"`
	Entry        []struct {
		FullURL  string          `json:"fullUrl"`
		Resource json.RawMessage `json:"resource"`
		Response struct {
			Status       string          `json:"status"`
			Location     string          `json:"location"`
			Etag         string          `json:"etag"`
			LastModified string          `json:"lastModified"`
			Outcome      json.RawMessage `json:"outcome"`
		} `json:"response"`
	} `json:"entry"`
}

func decodeResponse(t testing.TB, body, typ string) responseBundle {
	t.Helper()
	var b responseBundle
	if err := json.Unmarshal([]byte(body), &b); err != nil {
		t.Fatalf("body is not JSON: %v: %s", err, body)
	}
	if b.ResourceType != "Bundle" || b.Type != typ {
		t.Fatalf("not a %s Bundle: %s", typ, body)
	}
	return b
}

// statuses lists the entries' response.status codes.
func (b responseBundle) statuses() string {
	var s []string
	for _, e := range b.Entry {
		code, _, _ := strings.Cut(e.Response.Status, " ")
		s = append(s, code)
	}
	return strings.Join(s, " ")
}

// expectStatuses is a Check on a response Bundle's entry statuses.
func expectStatuses(typ, want string) func(testing.TB, *servertest.Response) {
	return func(t testing.TB, res *servertest.Response) {
		t.Helper()
		if got := decodeResponse(t, res.Body, typ).statuses(); got != want {
			t.Errorf("entry statuses %q, want %q; body %s", got, want, res.Body)
		}
	}
}

// idOf returns the id in a Location such as B/fhir/Patient/ID/_history/1.
func idOf(t testing.TB, location, typ string) string {
	t.Helper()
	rest, ok := strings.CutPrefix(location, base+"/fhir/"+typ+"/")
	id, _, ok2 := strings.Cut(rest, "/_history/")
	if !ok || !ok2 || id == "" {
		t.Fatalf("location %q is not %s/fhir/%s/ID/_history/N", location, base, typ)
	}
	return id
}

func postBundle(t testing.TB, h http.Handler, body string, header ...string) (int, string) {
	t.Helper()
	rec := do(t, h, http.MethodPost, "/fhir", body, append([]string{"Content-Type", "application/fhir+json"}, header...)...)
	return rec.Code, rec.Body.String()
}

const (
	obsFor = `{"resourceType":"Observation","status":"final","code":{"text":"%s"},"subject":{"reference":"%s"}}`
	sysP1  = `{"resourceType":"Patient","id":"p1","identifier":[{"system":"http://sys","value":"1"}],"name":[{"family":"One"}]}`
)

func obs(code, subject string) string { return fmt.Sprintf(obsFor, code, subject) }

// obsID is obs with an id, for PUT.
func obsID(id, code, subject string) string {
	return `{"resourceType":"Observation","id":"` + id + `",` + strings.TrimPrefix(obs(code, subject), `{"resourceType":"Observation",`)
}

// compact removes the white space PostgreSQL's jsonb puts into the JSON it
// returns (the stored bytes are served as the database gives them back).
func compact(t testing.TB, s string) string {
	t.Helper()
	var b bytes.Buffer
	if err := json.Compact(&b, []byte(s)); err != nil {
		t.Fatalf("not JSON: %v: %s", err, s)
	}
	return b.String()
}

// expectJSON is a Check that the compacted body contains each of subs.
func expectJSON(subs ...string) func(testing.TB, *servertest.Response) {
	return func(t testing.TB, res *servertest.Response) {
		t.Helper()
		body := compact(t, res.Body)
		for _, s := range subs {
			if !strings.Contains(body, s) {
				t.Errorf("body does not contain %s: %s", s, body)
			}
		}
	}
}

func TestTransaction(t *testing.T) {
	eachStore(t, testTransaction)
}

func testTransaction(t *testing.T, newHandler func(t *testing.T) http.Handler) {
	t.Run("creates and rewrites references everywhere", func(t *testing.T) {
		h := newHandler(t)
		patient := `{"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">see <a href=\"urn:uuid:11111111-1111-4111-8111-111111111111\">me</a></div>"},` +
			`"extension":[{"url":"http://example.org/self","valueUri":"urn:uuid:11111111-1111-4111-8111-111111111111"}],"name":[{"family":"Rewritten"}]}`
		observation := `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"urn:uuid:11111111-1111-4111-8111-111111111111"},` +
			`"encounter":{"reference":"urn:uuid:33333333-3333-4333-8333-333333333333"},` +
			`"extension":[{"url":"http://example.org/also","valueReference":{"reference":"urn:uuid:11111111-1111-4111-8111-111111111111"}}],` +
			`"valueQuantity":{"value":176.35499866729558,"unit":"cm"}}`
		encounter := `{"resourceType":"Encounter","status":"finished","class":{"code":"AMB"},"subject":{"reference":"urn:uuid:11111111-1111-4111-8111-111111111111"}}`
		code, body := postBundle(t, h, txBundle(
			entryOf("urn:uuid:22222222-2222-4222-8222-222222222222", "POST", "Observation", observation, ""),
			entryOf("urn:uuid:11111111-1111-4111-8111-111111111111", "POST", "Patient", patient, ""),
			entryOf("urn:uuid:33333333-3333-4333-8333-333333333333", "PUT", "Encounter/e1", encounter, ""),
		))
		if code != 200 {
			t.Fatalf("status %d: %s", code, body)
		}
		b := decodeResponse(t, body, "transaction-response")
		if got := b.statuses(); got != "201 201 201" {
			t.Fatalf("statuses %s: %s", got, body)
		}
		for _, e := range b.Entry {
			if e.Response.Etag != `W/"1"` || e.Response.LastModified == "" || e.Resource != nil {
				t.Errorf("entry response %+v (resource %s): want etag, lastModified and no resource by default", e.Response, e.Resource)
			}
		}
		pid := idOf(t, b.Entry[1].Response.Location, "Patient")
		oid := idOf(t, b.Entry[0].Response.Location, "Observation")
		if b.Entry[2].Response.Location != base+"/fhir/Encounter/e1/_history/1" {
			t.Errorf("PUT location %q", b.Entry[2].Response.Location)
		}
		stored := compact(t, do(t, h, http.MethodGet, "/fhir/Observation/"+oid, "").Body.String())
		for _, want := range []string{`"subject":{"reference":"Patient/` + pid + `"}`, `"encounter":{"reference":"Encounter/e1"}`,
			`"valueReference":{"reference":"Patient/` + pid + `"}`, "176.35499866729558"} {
			if !strings.Contains(stored, want) {
				t.Errorf("stored Observation lacks %s: %s", want, stored)
			}
		}
		stored = compact(t, do(t, h, http.MethodGet, "/fhir/Patient/"+pid, "").Body.String())
		for _, want := range []string{`href=\"Patient/` + pid + `\"`, `"valueUri":"Patient/` + pid + `"`} {
			if !strings.Contains(stored, want) {
				t.Errorf("stored Patient lacks %s: %s", want, stored)
			}
		}
		if strings.Contains(stored, "urn:uuid") {
			t.Errorf("a urn:uuid survived: %s", stored)
		}
	})

	t.Run("relative references resolve against an absolute fullUrl", func(t *testing.T) {
		h := newHandler(t)
		code, body := postBundle(t, h, txBundle(
			entryOf("http://client.example/fhir/Patient/123", "POST", "Patient", `{"resourceType":"Patient","id":"123"}`, ""),
			entryOf("http://client.example/fhir/Observation/9", "POST", "Observation", obs("x", "Patient/123"), ""),
			entryOf("http://client.example/fhir/Observation/10", "POST", "Observation", obs("y", "http://client.example/fhir/Patient/123"), ""),
		))
		if code != 200 {
			t.Fatalf("status %d: %s", code, body)
		}
		b := decodeResponse(t, body, "transaction-response")
		pid := idOf(t, b.Entry[0].Response.Location, "Patient")
		if pid == "123" {
			t.Fatal("POST kept the client's id")
		}
		for _, i := range []int{1, 2} {
			got := compact(t, do(t, h, http.MethodGet, strings.TrimPrefix(b.Entry[i].Response.Location, base), "").Body.String())
			if !strings.Contains(got, `"reference":"Patient/`+pid+`"`) {
				t.Errorf("entry %d: reference not rewritten: %s", i, got)
			}
		}
	})

	failures := []servertest.Scenario{
		{
			Name: "a failing last entry leaves nothing", Method: http.MethodPost, Path: "/fhir", Header: fhirJSON,
			Body: txBundle(
				entryOf("urn:uuid:a", "POST", "Patient", `{"resourceType":"Patient"}`, ""),
				entryOf("", "POST", "Observation", obs("x", "urn:uuid:a"), ""),
				entryOf("", "PUT", "Patient/p9", `{"resourceType":"Patient","id":"p9"}`, `"ifMatch":"W/\"3\""`),
			),
			ExpectStatus: 412, Check: expectOutcome("conflict", `Bundle.entry[2] (PUT Patient/p9): If-Match W/"3" given but Patient/p9 does not exist`),
			After: nothingStored(),
		},
		{
			Name: "an invalid resource fails the transaction", Method: http.MethodPost, Path: "/fhir", Header: fhirJSON,
			Body: txBundle(
				entryOf("", "POST", "Patient", `{"resourceType":"Patient"}`, ""),
				entryOf("", "POST", "Patient", `{"resourceType":"Patient","gender":"robot"}`, ""),
			),
			ExpectStatus: 400, Check: expectOutcome("invalid", "Bundle.entry[1] (POST Patient): "), After: nothingStored(),
		},
		{
			Name: "a reference to a missing resource", Method: http.MethodPost, Path: "/fhir", Header: fhirJSON,
			Body: txBundle(
				entryOf("", "POST", "Patient", `{"resourceType":"Patient"}`, ""),
				entryOf("", "POST", "Observation", obs("x", "Patient/nobody"), ""),
			),
			ExpectStatus: 400, Check: expectOutcome("invalid", "refers to Patient/nobody, which does not exist"), After: nothingStored(),
		},
		{
			Name: "an absolute reference under the base to a missing resource", Method: http.MethodPost, Path: "/fhir", Header: fhirJSON,
			Body:         txBundle(entryOf("", "POST", "Observation", obs("x", base+"/fhir/Patient/nobody"), "")),
			ExpectStatus: 400, Check: expectOutcome("invalid", "Patient/nobody"), After: nothingStored(),
		},
		{
			Name: "a urn:uuid no entry has", Method: http.MethodPost, Path: "/fhir", Header: fhirJSON,
			Body:         txBundle(entryOf("", "POST", "Observation", obs("x", "urn:uuid:99999999-9999-4999-8999-999999999999"), "")),
			ExpectStatus: 400, Check: expectOutcome("invalid", "names no entry of this Bundle"), After: nothingStored(),
		},
		{
			Name: "a reference to a resource the transaction deletes", Method: http.MethodPost, Path: "/fhir", Header: fhirJSON,
			Before: []servertest.Scenario{put("/fhir/Patient/p1", patientP1)},
			Body: txBundle(
				entryOf("", "DELETE", "Patient/p1", "", ""),
				entryOf("", "POST", "Observation", obs("x", "Patient/p1"), ""),
			),
			ExpectStatus: 400, Check: expectOutcome("invalid", "a resource that this transaction deletes"),
			After: []servertest.Scenario{{Path: "/fhir/Patient/p1", ExpectStatus: 200}},
		},
		{
			Name: "one resource twice", Method: http.MethodPost, Path: "/fhir", Header: fhirJSON,
			Body: txBundle(
				entryOf("", "PUT", "Patient/p1", patientP1, ""),
				entryOf("", "DELETE", "Patient/p1", "", ""),
			),
			ExpectStatus: 400, Check: expectOutcome("invalid", "a transaction may act on each resource once"), After: nothingStored(),
		},
		{
			Name: "a conditional reference with no match", Method: http.MethodPost, Path: "/fhir", Header: fhirJSON,
			Body:         txBundle(entryOf("", "POST", "Observation", obs("x", "Patient?identifier=http://sys|404"), "")),
			ExpectStatus: 400, Check: expectOutcome("invalid", "matches no resource"), After: nothingStored(),
		},
		{
			Name: "a conditional reference with two matches", Method: http.MethodPost, Path: "/fhir", Header: fhirJSON,
			Before: []servertest.Scenario{put("/fhir/Patient/a", `{"resourceType":"Patient","id":"a","identifier":[{"system":"http://sys","value":"2"}]}`),
				put("/fhir/Patient/b", `{"resourceType":"Patient","id":"b","identifier":[{"system":"http://sys","value":"2"}]}`)},
			Body:         txBundle(entryOf("", "POST", "Observation", obs("x", "Patient?identifier=http://sys|2"), "")),
			ExpectStatus: 412, Check: expectOutcome("conflict", "matches more than one resource"),
			After: []servertest.Scenario{{Path: "/fhir/Observation", ExpectStatus: 200, ExpectContains: []string{`"total":0`}}},
		},
		{
			Name: "a conditional update with two matches", Method: http.MethodPost, Path: "/fhir", Header: fhirJSON,
			Before: []servertest.Scenario{put("/fhir/Patient/a", `{"resourceType":"Patient","id":"a","identifier":[{"system":"http://sys","value":"2"}]}`),
				put("/fhir/Patient/b", `{"resourceType":"Patient","id":"b","identifier":[{"system":"http://sys","value":"2"}]}`)},
			Body: txBundle(
				entryOf("", "POST", "Organization", `{"resourceType":"Organization","name":"x"}`, ""),
				entryOf("", "PUT", "Patient?identifier=http://sys|2", `{"resourceType":"Patient","active":true}`, ""),
			),
			ExpectStatus: 412, Check: expectOutcome("conflict", "Bundle.entry[1] (PUT Patient?identifier=http://sys|2): the criteria"),
			After: []servertest.Scenario{{Path: "/fhir/Organization", ExpectStatus: 200, ExpectContains: []string{`"total":0`}}},
		},
		{
			Name: "a fullUrl twice", Method: http.MethodPost, Path: "/fhir", Header: fhirJSON,
			Body: txBundle(
				entryOf("urn:uuid:a", "POST", "Patient", `{"resourceType":"Patient"}`, ""),
				entryOf("urn:uuid:a", "POST", "Patient", `{"resourceType":"Patient"}`, ""),
			),
			ExpectStatus: 400, Check: expectOutcome("invalid", `Bundle.entry[1] (POST Patient): fullUrl "urn:uuid:a" is also the fullUrl of Bundle.entry[0]`), After: nothingStored(),
		},
		{
			Name: "a relative fullUrl", Method: http.MethodPost, Path: "/fhir", Header: fhirJSON,
			Body:         txBundle(entryOf("Patient/1", "POST", "Patient", `{"resourceType":"Patient"}`, "")),
			ExpectStatus: 400, Check: expectOutcome("invalid", "is not absolute"), After: nothingStored(),
		},
		{
			Name: "not a transaction or batch", Method: http.MethodPost, Path: "/fhir", Header: fhirJSON,
			Body:         bundleOf("collection", entryOf("", "POST", "Patient", `{"resourceType":"Patient"}`, "")),
			ExpectStatus: 400, Check: expectOutcome("invalid", `not "collection"`), After: nothingStored(),
		},
		{
			Name: "not a Bundle", Method: http.MethodPost, Path: "/fhir", Header: fhirJSON, Body: `{"resourceType":"Patient"}`,
			ExpectStatus: 400, Check: expectOutcome("invalid", `resourceType "Patient" does not match`), After: nothingStored(),
		},
		{
			Name: "a resource of another type than the URL", Method: http.MethodPost, Path: "/fhir", Header: fhirJSON,
			Body:         txBundle(entryOf("", "POST", "Observation", `{"resourceType":"Patient"}`, "")),
			ExpectStatus: 400, Check: expectOutcome("invalid", "Bundle.entry[0] (POST Observation): resourceType \"Patient\" does not match"), After: nothingStored(),
		},
		{
			Name: "an unknown method", Method: http.MethodPost, Path: "/fhir", Header: fhirJSON,
			Body:         txBundle(entryOf("", "MERGE", "Patient/p1", "", "")),
			ExpectStatus: 400, Check: expectOutcome("invalid", `"MERGE"`), After: nothingStored(),
		},
		{
			Name: "a request.url on another server", Method: http.MethodPost, Path: "/fhir", Header: fhirJSON,
			Body:         txBundle(entryOf("", "PUT", "http://elsewhere/fhir/Patient/p1", patientP1, "")),
			ExpectStatus: 400, Check: expectOutcome("invalid", "is not on this server"), After: nothingStored(),
		},
		{
			Name: "a failing read fails the transaction", Method: http.MethodPost, Path: "/fhir", Header: fhirJSON,
			Body: txBundle(
				entryOf("", "POST", "Patient", `{"resourceType":"Patient"}`, ""),
				entryOf("", "GET", "Patient/nobody", "", ""),
			),
			ExpectStatus: 404, Check: expectOutcome("not-found", "Bundle.entry[1] (GET Patient/nobody)"), After: nothingStored(),
		},
	}
	servertest.Run(t, newHandler, failures)

	t.Run("processing order: DELETE, POST, PUT, GET", func(t *testing.T) {
		h := newHandler(t)
		put("/fhir/Patient/p1", patientP1).Do(t, h)
		put("/fhir/Patient/p2", `{"resourceType":"Patient","id":"p2"}`).Do(t, h)
		code, body := postBundle(t, h, txBundle(
			entryOf("", "GET", "Patient/p1", "", ""),
			entryOf("", "GET", "Patient?family=Two", "", ""),
			entryOf("", "PUT", "Patient/p1", patientP1v2, `"ifMatch":"W/\"1\""`),
			entryOf("", "POST", "Observation", obs("x", "Patient/p1"), ""),
			entryOf("", "DELETE", "Patient/p2", "", ""),
			entryOf("", "HEAD", "Patient/p1", "", ""),
		))
		if code != 200 {
			t.Fatalf("status %d: %s", code, body)
		}
		b := decodeResponse(t, body, "transaction-response")
		if got := b.statuses(); got != "200 200 200 201 204 200" {
			t.Fatalf("statuses %s: %s", got, body)
		}
		if !strings.Contains(compact(t, string(b.Entry[0].Resource)), `"family":"Two"`) || b.Entry[0].Response.Etag != `W/"2"` {
			t.Errorf("the GET ran before the PUT: %s %+v", b.Entry[0].Resource, b.Entry[0].Response)
		}
		if !strings.Contains(string(b.Entry[1].Resource), `"type":"searchset"`) || !strings.Contains(string(b.Entry[1].Resource), `"total":1`) {
			t.Errorf("the search did not see the PUT: %s", b.Entry[1].Resource)
		}
		if b.Entry[4].Response.Etag != `W/"2"` || b.Entry[4].Response.Location != "" {
			t.Errorf("delete response %+v", b.Entry[4].Response)
		}
		if b.Entry[5].Resource != nil || b.Entry[5].Response.Etag != `W/"2"` {
			t.Errorf("HEAD entry %s %+v", b.Entry[5].Resource, b.Entry[5].Response)
		}
		servertest.Scenario{Path: "/fhir/Patient/p2", ExpectStatus: 410}.Do(t, h)
	})

	t.Run("conditional entries", func(t *testing.T) {
		h := newHandler(t)
		put("/fhir/Patient/p1", sysP1).Do(t, h)
		put("/fhir/Observation/old1", obsID("old1", "old", "Patient/p1")).Do(t, h)
		code, body := postBundle(t, h, txBundle(
			// Found: the urn:uuid becomes Patient/p1.
			entryOf("urn:uuid:a", "POST", "Patient", `{"resourceType":"Patient","name":[{"family":"Dup"}]}`, `"ifNoneExist":"identifier=http://sys|1"`),
			// Not found: created, and its urn:uuid resolves to the new id.
			entryOf("urn:uuid:b", "POST", "Patient", `{"resourceType":"Patient","identifier":[{"system":"http://sys","value":"new"}]}`, `"ifNoneExist":"Patient?identifier=http://sys|new"`),
			entryOf("", "POST", "Observation", obs("to-a", "urn:uuid:a"), ""),
			entryOf("", "POST", "Observation", obs("to-b", "urn:uuid:b"), ""),
			entryOf("", "POST", "Observation", obs("cond-ref", "Patient?identifier=http://sys|1"), ""),
			// Conditional update: no match and no id creates; one match updates.
			entryOf("urn:uuid:c", "PUT", "Organization?identifier=http://org|1", `{"resourceType":"Organization","identifier":[{"system":"http://org","value":"1"}]}`, ""),
			entryOf("", "PUT", "Observation?code:text=old", `{"resourceType":"Observation","status":"final","code":{"text":"old-updated"},"performer":[{"reference":"urn:uuid:c"}]}`, ""),
			entryOf("", "DELETE", "Observation?code:text=nothing-matches", "", ""),
		), "Prefer", "return=representation")
		if code != 200 {
			t.Fatalf("status %d: %s", code, body)
		}
		b := decodeResponse(t, body, "transaction-response")
		if got := b.statuses(); got != "200 201 201 201 201 201 200 204" {
			t.Fatalf("statuses %s: %s", got, body)
		}
		if b.Entry[0].Response.Location != base+"/fhir/Patient/p1/_history/1" || !strings.Contains(compact(t, string(b.Entry[0].Resource)), `"family":"One"`) {
			t.Errorf("conditional create did not answer with the match: %+v %s", b.Entry[0].Response, b.Entry[0].Resource)
		}
		newID := idOf(t, b.Entry[1].Response.Location, "Patient")
		orgID := idOf(t, b.Entry[5].Response.Location, "Organization")
		for i, want := range map[int]string{2: "Patient/p1", 3: "Patient/" + newID, 4: "Patient/p1", 6: "Organization/" + orgID} {
			if !strings.Contains(compact(t, string(b.Entry[i].Resource)), `"reference":"`+want+`"`) {
				t.Errorf("entry %d does not refer to %s: %s", i, want, b.Entry[i].Resource)
			}
		}
		if b.Entry[6].Response.Location != base+"/fhir/Observation/old1/_history/2" {
			t.Errorf("conditional update location %q", b.Entry[6].Response.Location)
		}
		servertest.Scenario{Path: "/fhir/Patient?identifier=http://sys|1", ExpectStatus: 200, ExpectContains: []string{`"total":1`}}.Do(t, h)
	})

	t.Run("patch entries", func(t *testing.T) {
		h := newHandler(t)
		put("/fhir/Patient/p1", sysP1).Do(t, h)
		put("/fhir/Patient/p2", `{"resourceType":"Patient","id":"p2","identifier":[{"system":"http://sys","value":"2"}]}`).Do(t, h)
		jsonPatch := base64.StdEncoding.EncodeToString([]byte(`[{"op":"add","path":"/gender","value":"female"}]`))
		code, body := postBundle(t, h, txBundle(
			entryOf("", "PATCH", "Patient/p1", `{"resourceType":"Binary","contentType":"application/json-patch+json","data":"`+jsonPatch+`"}`, `"ifMatch":"W/\"1\""`),
			entryOf("", "PATCH", "Patient?identifier=http://sys|2", `{"resourceType":"Parameters","parameter":[{"name":"operation","part":[{"name":"type","valueCode":"add"},{"name":"path","valueString":"Patient"},{"name":"name","valueString":"birthDate"},{"name":"value","valueDate":"2001-02-03"}]}]}`, ""),
		))
		if code != 200 {
			t.Fatalf("status %d: %s", code, body)
		}
		if got := decodeResponse(t, body, "transaction-response").statuses(); got != "200 200" {
			t.Fatalf("statuses %s: %s", got, body)
		}
		servertest.Scenario{Path: "/fhir/Patient/p1", ExpectStatus: 200, Check: expectJSON(`"gender":"female"`, `"versionId":"2"`)}.Do(t, h)
		servertest.Scenario{Path: "/fhir/Patient/p2", ExpectStatus: 200, Check: expectJSON(`"birthDate":"2001-02-03"`, `"versionId":"2"`)}.Do(t, h)
	})

	t.Run("an empty transaction", func(t *testing.T) {
		h := newHandler(t)
		code, body := postBundle(t, h, `{"resourceType":"Bundle","type":"transaction"}`)
		if code != 200 || body != `{"resourceType":"Bundle","type":"transaction-response"}` {
			t.Fatalf("status %d: %s", code, body)
		}
	})

	t.Run("Prefer return=OperationOutcome", func(t *testing.T) {
		h := newHandler(t)
		code, body := postBundle(t, h, txBundle(entryOf("", "PUT", "Patient/p1", patientP1, "")), "Prefer", "return=OperationOutcome")
		if code != 200 || !strings.Contains(body, `"outcome":{"resourceType":"OperationOutcome","issue":[{"severity":"information","code":"informational","diagnostics":"created Patient/p1"}]}`) {
			t.Fatalf("status %d: %s", code, body)
		}
	})
}

// The knobs: entry limit, lenient references, refused deletes.
func TestBundleSettings(t *testing.T) {
	three := txBundle(
		entryOf("", "POST", "Patient", `{"resourceType":"Patient"}`, ""),
		entryOf("", "POST", "Patient", `{"resourceType":"Patient"}`, ""),
		entryOf("", "POST", "Patient", `{"resourceType":"Patient"}`, ""),
	)
	h := newServer(t, func(d *server.Deps) { d.MaxBundleEntries = 2 })
	servertest.Scenario{Name: "too many entries", Method: http.MethodPost, Path: "/fhir", Header: fhirJSON, Body: three,
		ExpectStatus: 413, Check: expectOutcome("too-costly", "the Bundle has 3 entries; this server takes at most 2"), After: nothingStored()}.Do(t, h)

	h = newServer(t, func(d *server.Deps) { d.References = server.ReferencesLenient })
	servertest.Scenario{Name: "lenient references", Method: http.MethodPost, Path: "/fhir", Header: fhirJSON,
		Body:         txBundle(entryOf("", "POST", "Observation", obs("x", "Patient/nobody"), "")),
		ExpectStatus: 200, Check: expectStatuses("transaction-response", "201")}.Do(t, h)

	eachStore(t, func(t *testing.T, newHandler func(t *testing.T) http.Handler) {
		h := newHandler(t)
		put("/fhir/Patient/p1", patientP1).Do(t, h)
		put("/fhir/Observation/o1", obsID("o1", "x", "Patient/p1")).Do(t, h)
		servertest.Scenario{Name: "referenced", Method: http.MethodDelete, Path: "/fhir/Patient/p1",
			ExpectStatus: 409, Check: expectOutcome("conflict", "Patient/p1 cannot be deleted: Observation/o1 refer to it")}.Do(t, h)
		servertest.Scenario{Name: "still there", Path: "/fhir/Patient/p1", ExpectStatus: 200}.Do(t, h)
		servertest.Scenario{Name: "referenced, in a transaction", Method: http.MethodPost, Path: "/fhir", Header: fhirJSON,
			Body:         txBundle(entryOf("", "DELETE", "Patient/p1", "", "")),
			ExpectStatus: 409, Check: expectOutcome("conflict", "Bundle.entry[0] (DELETE Patient/p1): Patient/p1 cannot be deleted")}.Do(t, h)
		servertest.Scenario{Name: "deleting the referrer too", Method: http.MethodPost, Path: "/fhir", Header: fhirJSON,
			Body:         txBundle(entryOf("", "DELETE", "Patient/p1", "", ""), entryOf("", "DELETE", "Observation/o1", "", "")),
			ExpectStatus: 200, Check: expectStatuses("transaction-response", "204 204")}.Do(t, h)
		servertest.Scenario{Name: "gone", Path: "/fhir/Patient/p1", ExpectStatus: 410}.Do(t, h)
	}, func(d *server.Deps) { d.DeleteReferenced = server.DeleteRefuse })

	// Allowed by default.
	s := newServer(t)
	put("/fhir/Patient/p1", patientP1).Do(t, s)
	put("/fhir/Observation/o1", obsID("o1", "x", "Patient/p1")).Do(t, s)
	servertest.Scenario{Name: "allowed", Method: http.MethodDelete, Path: "/fhir/Patient/p1", ExpectStatus: 204}.Do(t, s)

	for _, bad := range []func(*server.Deps){
		func(d *server.Deps) { d.References = "loose" },
		func(d *server.Deps) { d.DeleteReferenced = "maybe" },
		func(d *server.Deps) { d.ConditionalDelete = "some" },
		func(d *server.Deps) { d.MaxBundleEntries = -1 },
	} {
		d := server.Deps{Store: s.store, BaseURL: base, AuthMode: server.AuthNone}
		bad(&d)
		if _, err := server.NewRouter(d); err == nil {
			t.Errorf("NewRouter accepted %+v", d)
		}
	}
}

func TestBatch(t *testing.T) {
	eachStore(t, func(t *testing.T, newHandler func(t *testing.T) http.Handler) {
		h := newHandler(t)
		put("/fhir/Patient/p1", sysP1).Do(t, h)
		code, body := postBundle(t, h, batchBundle(
			entryOf("", "POST", "Patient", `{"resourceType":"Patient","name":[{"family":"Batch"}]}`, ""),
			entryOf("", "PUT", "Patient/p2", `{"resourceType":"Patient","id":"p2","gender":"robot"}`, ""),
			entryOf("", "GET", "Patient/nobody", "", ""),
			entryOf("", "GET", "Patient?identifier=http://sys|1", "", ""),
			entryOf("", "PUT", "Patient/p1", sysP1, `"ifMatch":"W/\"9\""`),
			entryOf("", "DELETE", "Patient/p1", "", ""),
			entryOf("", "POST", "Observation", obs("x", "Patient/nobody"), ""),
			entryOf("", "GET", "Patient/p1/_history/1", "", `"ifNoneMatch":"W/\"1\""`),
			entryOf("", "POST", "Patient", `{"resourceType":"Patient"}`, `"ifNoneExist":"identifier=http://sys|1"`),
		))
		if code != 200 {
			t.Fatalf("status %d: %s", code, body)
		}
		b := decodeResponse(t, body, "batch-response")
		// The conditional create ran after the delete: no match any more.
		if got := b.statuses(); got != "201 400 404 200 412 204 201 304 201" {
			t.Fatalf("statuses %s: %s", got, body)
		}
		var oo outcome
		if err := json.Unmarshal(b.Entry[1].Response.Outcome, &oo); err != nil || len(oo.Issue) != 1 ||
			!strings.Contains(oo.Issue[0].Diagnostics, "Bundle.entry[1] (PUT Patient/p2): ") || !strings.Contains(oo.Issue[0].Diagnostics, "gender") {
			t.Errorf("entry 1 outcome %s", b.Entry[1].Response.Outcome)
		}
		if !strings.Contains(string(b.Entry[3].Resource), `"total":1`) {
			t.Errorf("search entry %s", b.Entry[3].Resource)
		}
		servertest.Scenario{Path: "/fhir/Patient?family=Batch", ExpectStatus: 200, ExpectContains: []string{`"total":1`}}.Do(t, h)
		servertest.Scenario{Path: "/fhir/Patient/p2", ExpectStatus: 404}.Do(t, h)
	})
}

// History in a batch: the three levels, with their parameters, as the
// plain interactions answer them; a transaction refuses history (it reads
// the store, not the transaction).
func TestBatchHistory(t *testing.T) {
	eachStore(t, func(t *testing.T, newHandler func(t *testing.T) http.Handler) {
		h := newHandler(t)
		put("/fhir/Patient/p1", sysP1).Do(t, h)
		put("/fhir/Patient/p1", patientP1).Do(t, h)
		put("/fhir/Observation/o1", obsID("o1", "x", "Patient/p1")).Do(t, h)
		code, body := postBundle(t, h, batchBundle(
			entryOf("", "GET", "_history", "", ""),
			entryOf("", "GET", "Patient/_history?_count=1", "", ""),
			entryOf("", "GET", "Patient/p1/_history", "", ""),
			entryOf("", "GET", "Patient/nobody/_history", "", ""),
			entryOf("", "GET", "Patient/p1/_history?_count=x", "", ""),
			entryOf("", "GET", "Nope/_history", "", ""),
		))
		if code != 200 {
			t.Fatalf("status %d: %s", code, body)
		}
		b := decodeResponse(t, body, "batch-response")
		if got := b.statuses(); got != "200 200 200 404 400 404" {
			t.Fatalf("statuses %s: %s", got, body)
		}
		for i, want := range []struct {
			total   int
			entries int
			next    bool
		}{{3, 3, false}, {2, 1, true}, {2, 2, false}} {
			hb := decodeBundle(t, string(b.Entry[i].Resource))
			if *hb.Total != want.total || len(hb.Entry) != want.entries || (hb.link("next") != "") != want.next {
				t.Errorf("entry %d: total %d, %d entries, next %q", i, *hb.Total, len(hb.Entry), hb.link("next"))
			}
		}
		plain := do(t, h, "GET", "/fhir/Patient/p1/_history", "")
		if got := compact(t, string(b.Entry[2].Resource)); got != compact(t, plain.Body.String()) {
			t.Errorf("batch history differs from the plain one:\n%s\n%s", got, plain.Body)
		}
		code, body = postBundle(t, h, txBundle(entryOf("", "GET", "Patient/p1/_history", "", "")))
		if code != 400 || !strings.Contains(body, "Bundle.entry[0] (GET Patient/p1/_history): history is served in a batch") {
			t.Fatalf("history in a transaction: %d %s", code, body)
		}
	})
}

// Transactions at once on one resource, each with the version it read:
// exactly one wins each round, the others fail with 412 and store nothing.
func TestConcurrentTransactions(t *testing.T) {
	eachStore(t, func(t *testing.T, newHandler func(t *testing.T) http.Handler) {
		h := newHandler(t)
		put("/fhir/Patient/p1", patientP1).Do(t, h)
		const writers = 6
		results := make(chan int, writers)
		for i := range writers {
			go func() {
				code, _ := postBundle(t, h, txBundle(
					entryOf("", "PUT", "Patient/p1", fmt.Sprintf(`{"resourceType":"Patient","id":"p1","name":[{"family":"W%d"}]}`, i), `"ifMatch":"W/\"1\""`),
					entryOf("", "POST", "Observation", obs(fmt.Sprint(i), "Patient/p1"), ""),
				))
				results <- code
			}()
		}
		won := 0
		for range writers {
			switch code := <-results; code {
			case 200:
				won++
			case 412:
			default:
				t.Errorf("status %d", code)
			}
		}
		if won != 1 {
			t.Fatalf("%d transactions won with If-Match W/\"1\", want 1", won)
		}
		servertest.Scenario{Path: "/fhir/Observation", ExpectStatus: 200, ExpectContains: []string{`"total":1`}}.Do(t, h)
		servertest.Scenario{Path: "/fhir/Patient/p1", ExpectStatus: 200, Check: expectJSON(`"versionId":"2"`)}.Do(t, h)
	})
}
