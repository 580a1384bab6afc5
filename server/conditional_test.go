package server_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/fhirserver/fhirserver/server"
	"github.com/fhirserver/fhirserver/server/servertest"
)

const (
	sysTwoA = `{"resourceType":"Patient","id":"a","identifier":[{"system":"http://sys","value":"2"}]}`
	sysTwoB = `{"resourceType":"Patient","id":"b","identifier":[{"system":"http://sys","value":"2"}]}`
)

func withTwo() []servertest.Scenario {
	return []servertest.Scenario{put("/fhir/Patient/p1", sysP1), put("/fhir/Patient/a", sysTwoA), put("/fhir/Patient/b", sysTwoB)}
}

// versions is an After step: how many versions the server holds.
func versions(n int) servertest.Scenario {
	return servertest.Scenario{Name: fmt.Sprintf("%d versions", n), Path: "/fhir/_history", ExpectStatus: 200,
		ExpectContains: []string{fmt.Sprintf(`"total":%d`, n)}}
}

func TestConditionalCreate(t *testing.T) {
	post := func(name, criteria string, status int, check func(testing.TB, *servertest.Response), after ...servertest.Scenario) servertest.Scenario {
		return servertest.Scenario{Name: name, Method: http.MethodPost, Path: "/fhir/Patient",
			Header: hdr("Content-Type", "application/fhir+json", "If-None-Exist", criteria),
			Body:   `{"resourceType":"Patient","identifier":[{"system":"http://sys","value":"new"}]}`,
			Before: withTwo(), ExpectStatus: status, Check: check, After: after}
	}
	runEachStore(t, []servertest.Scenario{
		post("no match creates", "identifier=http://sys|new", 201, nil, versions(4),
			servertest.Scenario{Path: "/fhir/Patient?identifier=http://sys|new", ExpectStatus: 200, ExpectContains: []string{`"total":1`}}),
		post("one match answers with it", "identifier=http://sys|1", 200, func(t testing.TB, res *servertest.Response) {
			if res.Header.Get("ETag") != `W/"1"` || res.Header.Get("Location") != "" || !strings.Contains(compact(t, res.Body), `"id":"p1"`) {
				t.Errorf("headers %v body %s", res.Header, res.Body)
			}
		}, versions(3)),
		post("the Type? form", "Patient?identifier=http://sys|1", 200, nil, versions(3)),
		post("several matches", "identifier=http://sys|2", 412, expectOutcome("conflict", "match more than one resource"), versions(3)),
		post("an unknown parameter", "colour=blue", 400, expectOutcome("invalid", "colour"), versions(3)),
		post("no parameters", "_format=json", 400, expectOutcome("invalid", "select nothing"), versions(3)),
	}, "no match creates", "one match answers with it", "several matches")
}

func TestConditionalUpdate(t *testing.T) {
	putIf := func(name, query, body string, status int, check func(testing.TB, *servertest.Response), after ...servertest.Scenario) servertest.Scenario {
		return servertest.Scenario{Name: name, Method: http.MethodPut, Path: "/fhir/Patient?" + query, Header: fhirJSON,
			Body: body, Before: withTwo(), ExpectStatus: status, Check: check, After: after}
	}
	runEachStore(t, []servertest.Scenario{
		putIf("no match, no id creates", "identifier=http://sys|new", `{"resourceType":"Patient","active":true}`, 201,
			func(t testing.TB, res *servertest.Response) {
				if !strings.HasPrefix(res.Header.Get("Location"), base+"/fhir/Patient/") {
					t.Errorf("Location %q", res.Header.Get("Location"))
				}
			}, versions(4)),
		putIf("no match with an id creates that id", "identifier=http://sys|new", `{"resourceType":"Patient","id":"chosen","active":true}`, 201,
			nil, servertest.Scenario{Path: "/fhir/Patient/chosen", ExpectStatus: 200}),
		putIf("one match is updated", "identifier=http://sys|1", `{"resourceType":"Patient","identifier":[{"system":"http://sys","value":"1"}],"active":true}`, 200,
			expectJSON(`"id":"p1"`, `"versionId":"2"`, `"active":true`), versions(4)),
		putIf("one match with its id", "identifier=http://sys|1", `{"resourceType":"Patient","id":"p1","active":true}`, 200, nil, versions(4)),
		putIf("one match with another id", "identifier=http://sys|1", `{"resourceType":"Patient","id":"other","active":true}`, 400,
			expectOutcome("invalid", `the resource id "other" is not the id "p1"`), versions(3)),
		putIf("several matches", "identifier=http://sys|2", `{"resourceType":"Patient"}`, 412,
			expectOutcome("conflict", "match more than one resource"), versions(3)),
		{Name: "If-Match on the match", Method: http.MethodPut, Path: "/fhir/Patient?identifier=http://sys|1",
			Header: hdr("Content-Type", "application/fhir+json", "If-Match", `W/"2"`), Body: `{"resourceType":"Patient","active":false}`,
			Before: withTwo(), ExpectStatus: 412, Check: expectOutcome("conflict", "version conflict"), After: []servertest.Scenario{versions(3)}},
		{Name: "no criteria", Method: http.MethodPut, Path: "/fhir/Patient", Header: fhirJSON, Body: `{"resourceType":"Patient"}`,
			ExpectStatus: 400, Check: expectOutcome("invalid", "needs search criteria"), After: nothingStored()},
		{Name: "an invalid body", Method: http.MethodPut, Path: "/fhir/Patient?identifier=x", Header: fhirJSON, Body: `{"resourceType":"Patient","gender":"robot"}`,
			ExpectStatus: 400, Check: expectOutcome("invalid", "gender"), After: nothingStored()},
	}, "no match, no id creates", "no match with an id creates that id", "one match is updated", "several matches", "If-Match on the match")
}

func TestConditionalDelete(t *testing.T) {
	runEachStore(t, []servertest.Scenario{
		{Name: "no match", Method: http.MethodDelete, Path: "/fhir/Patient?identifier=http://sys|none", Before: withTwo(),
			ExpectStatus: 204, After: []servertest.Scenario{versions(3)}},
		{Name: "one match", Method: http.MethodDelete, Path: "/fhir/Patient?identifier=http://sys|1", Before: withTwo(),
			ExpectStatus: 204, ExpectHeader: hdr("ETag", `W/"2"`), After: []servertest.Scenario{{Path: "/fhir/Patient/p1", ExpectStatus: 410}}},
		{Name: "several matches", Method: http.MethodDelete, Path: "/fhir/Patient?identifier=http://sys|2", Before: withTwo(),
			ExpectStatus: 412, Check: expectOutcome("conflict", "this server deletes one resource per conditional delete"), After: []servertest.Scenario{versions(3)}},
		{Name: "the outcome", Method: http.MethodDelete, Path: "/fhir/Patient?identifier=http://sys|1", Before: withTwo(),
			Header:       hdr("Prefer", "return=OperationOutcome"),
			ExpectStatus: 200, ExpectContains: []string{`"diagnostics":"deleted Patient/p1"`}},
		{Name: "no criteria", Method: http.MethodDelete, Path: "/fhir/Patient", Before: withTwo(),
			ExpectStatus: 400, Check: expectOutcome("invalid", "needs search criteria"), After: []servertest.Scenario{versions(3)}},
	}, "no match", "one match", "several matches")
	multiple := func(d *server.Deps) { d.ConditionalDelete = server.ConditionalDeleteMultiple }
	servertest.Run(t, func(t *testing.T) http.Handler { return newServer(t, multiple) }, []servertest.Scenario{
		{Name: "multiple mode deletes every match", Method: http.MethodDelete, Path: "/fhir/Patient?identifier=http://sys|2", Before: withTwo(),
			Header:       hdr("Prefer", "return=OperationOutcome"),
			ExpectStatus: 200, ExpectContains: []string{`"diagnostics":"deleted 2 Patient resources"`},
			After: []servertest.Scenario{{Path: "/fhir/Patient/a", ExpectStatus: 410}, {Path: "/fhir/Patient/b", ExpectStatus: 410}, {Path: "/fhir/Patient/p1", ExpectStatus: 200}}},
		{Name: "metadata says multiple", Path: "/fhir/metadata", ExpectStatus: 200, ExpectContains: []string{`"conditionalDelete":"multiple"`}},
	})
}

func TestConditionalPatch(t *testing.T) {
	jp := hdr("Content-Type", "application/json-patch+json")
	runEachStore(t, []servertest.Scenario{
		{Name: "one match", Method: http.MethodPatch, Path: "/fhir/Patient?identifier=http://sys|1", Header: jp, Before: withTwo(),
			Body: `[{"op":"add","path":"/active","value":true}]`, ExpectStatus: 200, Check: expectJSON(`"id":"p1"`, `"active":true`, `"versionId":"2"`)},
		{Name: "no match", Method: http.MethodPatch, Path: "/fhir/Patient?identifier=http://sys|none", Header: jp, Before: withTwo(),
			Body: `[{"op":"add","path":"/active","value":true}]`, ExpectStatus: 404, Check: expectOutcome("not-found", "no Patient matches"), After: []servertest.Scenario{versions(3)}},
		{Name: "several matches", Method: http.MethodPatch, Path: "/fhir/Patient?identifier=http://sys|2", Header: jp, Before: withTwo(),
			Body: `[{"op":"add","path":"/active","value":true}]`, ExpectStatus: 412, After: []servertest.Scenario{versions(3)}},
	})
}

// Conditional creates at once with the same criteria store one resource:
// one client gets 201, the others 200 with that resource.
func TestConcurrentConditionalCreate(t *testing.T) {
	eachStore(t, func(t *testing.T, newHandler func(t *testing.T) http.Handler) {
		h := newHandler(t)
		const clients = 8
		var wg sync.WaitGroup
		codes := make([]int, clients)
		for i := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rec := do(t, h, http.MethodPost, "/fhir/Patient", `{"resourceType":"Patient","identifier":[{"system":"http://race","value":"1"}]}`,
					"Content-Type", "application/fhir+json", "If-None-Exist", "identifier=http://race|1", "Prefer", "return=minimal")
				codes[i] = rec.Code
			}()
		}
		wg.Wait()
		created := 0
		for _, c := range codes {
			switch c {
			case 201:
				created++
			case 200:
			default:
				t.Fatalf("statuses %v", codes)
			}
		}
		if created != 1 {
			t.Fatalf("%d of %d concurrent conditional creates created (statuses %v)", created, clients, codes)
		}
		servertest.Scenario{Path: "/fhir/Patient?identifier=http://race|1", ExpectStatus: 200, ExpectContains: []string{`"total":1`}}.Do(t, h)
	})
}
