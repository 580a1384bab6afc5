package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fhirserver/fhirserver/fhir"
	"github.com/fhirserver/fhirserver/server"
	"github.com/fhirserver/fhirserver/store"
	"github.com/fhirserver/fhirserver/store/postgres"
	"github.com/fhirserver/fhirserver/store/sqlite"
)

// auditLine is one "audit" log line.
type auditLine struct {
	Msg         string `json:"msg"`
	RequestID   string `json:"request_id"`
	Sub         string `json:"sub"`
	ClientID    string `json:"client_id"`
	FHIRUser    string `json:"fhir_user"`
	Interaction string `json:"interaction"`
	Entry       *int   `json:"entry"`
	Type        string `json:"type"`
	ID          string `json:"id"`
	Version     string `json:"version"`
	Status      int    `json:"status"`
	Outcome     string `json:"outcome"`
	Rule        string `json:"rule"`
}

// auditLines returns the audit lines logged since from (an offset in the
// log).
func auditLines(t testing.TB, logs *syncBuffer, from int) []auditLine {
	t.Helper()
	var out []auditLine
	sc := bufio.NewScanner(strings.NewReader(logs.String()[from:]))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var l auditLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("log line %q: %v", sc.Text(), err)
		}
		if l.Msg == "audit" {
			out = append(out, l)
		}
	}
	return out
}

// newObs is an Observation of patient without an id, to create.
func newObs(patient string) string {
	return `{"resourceType":"Observation","status":"final","code":{"text":"x"},"subject":{"reference":"Patient/` + patient + `"}}`
}

// failingAudit is a real store whose AuditEvent creates fail, to show that
// a write is answered as it happened all the same.
type failingAudit struct{ server.Store }

func (f failingAudit) Create(ctx context.Context, w store.Write) (*fhir.Resource, error) {
	if w.Type == "AuditEvent" {
		return nil, errors.New("audit store unavailable")
	}
	return f.Store.Create(ctx, w)
}

// TestAudit sends allowed and denied writes (plain, conditional, and the
// entries of a transaction and a batch) under wardPolicy with
// AuditEvents on, on both stores, and checks the audit line of each (who,
// what, outcome, and the rule of a denial) and the AuditEvents stored:
// valid R4, searchable, one per write, none for AuditEvent writes.
func TestAudit(t *testing.T) {
	stores := map[string]func(t *testing.T) server.Store{
		"sqlite": func(t *testing.T) server.Store {
			st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "fhir.db"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			return st
		},
		"postgres": func(t *testing.T) server.Store {
			st, err := postgres.Open(context.Background(), pg.NewDatabase(t))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			return st
		},
	}
	for _, name := range []string{"sqlite", "postgres"} {
		t.Run(name, func(t *testing.T) {
			st := stores[name](t)
			audit := &syncBuffer{}
			h, _ := routerOn(t, st, policyServer(t, wardPolicy, func(d *server.Deps) {
				d.AuditEvents = true
				d.AuditLogger = slog.New(slog.NewJSONHandler(audit, nil))
			}))
			runAudit(t, h, audit)
		})
	}
}

func runAudit(t *testing.T, h http.Handler, audit *syncBuffer) {
	v, err := validator()
	if err != nil {
		t.Fatal(err)
	}
	const rulesDoc = "scopes: user/*.cruds, policy: ward"
	send := func(token, method, path, body string, kv ...string) (int, []auditLine) {
		t.Helper()
		from := len(audit.String())
		res := do(t, h, method, path, body, append([]string{"Authorization", "Bearer " + token, "Content-Type", "application/fhir+json"}, kv...)...)
		lines := auditLines(t, audit, from)
		for _, l := range lines {
			if l.RequestID == "" || l.RequestID != res.Header().Get("X-Request-Id") {
				t.Errorf("%s %s: audit request id %q, response %q", method, path, l.RequestID, res.Header().Get("X-Request-Id"))
			}
		}
		return res.Code, lines
	}
	type want struct {
		interaction, typ, id, version string
		status                        int
		outcome, rule                 string
		entry                         int // -1: none
	}
	check := func(name string, got []auditLine, ws ...want) {
		t.Helper()
		if len(got) != len(ws) {
			t.Fatalf("%s: %d audit lines, want %d: %+v", name, len(got), len(ws), got)
		}
		for i, w := range ws {
			g := got[i]
			entry := -1
			if g.Entry != nil {
				entry = *g.Entry
			}
			if g.Interaction != w.interaction || g.Type != w.typ || (w.id != "*" && g.ID != w.id) || (w.version != "*" && g.Version != w.version) ||
				g.Status != w.status || g.Outcome != w.outcome || g.Rule != w.rule || entry != w.entry {
				t.Errorf("%s: line %d %+v (entry %d), want %+v", name, i, g, entry, w)
			}
		}
	}
	// Allowed writes.
	code, lines := send("sys", "PUT", "/fhir/Patient/a", `{"resourceType":"Patient","id":"a"}`)
	check("update-as-create", lines, want{"update", "Patient", "a", "1", 201, "success", "", -1})
	if code != 201 || lines[0].ClientID != "backend" || lines[0].Sub != "backend" || lines[0].FHIRUser != "" {
		t.Errorf("%d %+v", code, lines[0])
	}
	send("sys", "PUT", "/fhir/Patient/b", `{"resourceType":"Patient","id":"b"}`)
	send("sys", "PUT", "/fhir/Observation/ob1", obsJSON("ob1", "b", "final"))
	code, lines = send("doc", "POST", "/fhir/Observation", newObs("a"))
	check("create", lines, want{"create", "Observation", "*", "1", 201, "success", "", -1})
	if code != 201 || lines[0].FHIRUser != "Practitioner/doc" || lines[0].ClientID != "ehr" || lines[0].ID == "" {
		t.Errorf("%d %+v", code, lines[0])
	}
	oa := lines[0].ID
	_, lines = send("doc", "PUT", "/fhir/Observation/"+oa, obsJSON(oa, "a", "amended"))
	check("update", lines, want{"update", "Observation", oa, "2", 200, "success", "", -1})
	_, lines = send("sys", "PATCH", "/fhir/Observation/"+oa, `[{"op":"replace","path":"/status","value":"final"}]`, "Content-Type", "application/json-patch+json")
	check("patch", lines, want{"patch", "Observation", oa, "3", 200, "success", "", -1})
	_, lines = send("sys", "POST", "/fhir/Observation", newObs("b"), "If-None-Exist", "_id=ob1")
	check("conditional create (match)", lines, want{"conditional-create", "Observation", "ob1", "1", 200, "success", "", -1})
	_, lines = send("sys", "PUT", "/fhir/Patient?_id=b", `{"resourceType":"Patient","id":"b","active":true}`)
	check("conditional update", lines, want{"conditional-update", "Patient", "b", "2", 200, "success", "", -1})

	// Denied writes, with the rule that denied them.
	_, lines = send("doc", "DELETE", "/fhir/Observation/"+oa, "")
	check("delete denied by the policy", lines, want{"delete", "Observation", oa, "", 403, "denied", "policy: practitioners do not delete", -1})
	_, lines = send("doc", "POST", "/fhir/Observation", newObs("b"))
	check("create outside", lines, want{"create", "Observation", "", "", 403, "denied", "outside what the caller may write (" + rulesDoc + ")", -1})
	_, lines = send("doc", "PUT", "/fhir/Observation/ob1", obsJSON("ob1", "a", "final"))
	check("update of another patient's", lines, want{"update", "Observation", "ob1", "", 404, "denied", "outside what the caller may write (" + rulesDoc + ")", -1})
	_, lines = send("doc", "DELETE", "/fhir/Observation?status=final", "")
	check("conditional delete refused", lines, want{"conditional-delete", "Observation", "", "", 403, "denied", "policy: practitioners do not delete", -1})
	_, lines = send("doc", "PUT", "/fhir/Observation?_id="+oa, obsJSON(oa, "b", "final"))
	check("conditional update refused (moving its match out)", lines, want{"conditional-update", "Observation", "", "", 403, "denied", "outside what the caller may write (" + rulesDoc + ")", -1})
	// A failed write that access control did not refuse.
	_, lines = send("sys", "PUT", "/fhir/Observation/bad", `{"resourceType":"Observation","id":"bad"}`)
	check("invalid", lines, want{"update", "Observation", "bad", "", 400, "failed", "", -1})

	// A transaction: the Bundle and each write entry (not the read).
	tx := `{"resourceType":"Bundle","type":"transaction","entry":[
		{"fullUrl":"urn:uuid:6f0c8a52-3e2b-4c4e-9d7a-1a2b3c4d5e6f","resource":` + newObs("a") + `,"request":{"method":"POST","url":"Observation"}},
		{"resource":{"resourceType":"Patient","id":"c"},"request":{"method":"PUT","url":"Patient/c"}},
		{"request":{"method":"GET","url":"Patient/a"}}]}`
	code, lines = send("sys", "POST", "/fhir", tx)
	check("transaction", lines,
		want{"transaction", "", "", "", 200, "success", "", -1},
		want{"create", "Observation", "*", "1", 201, "success", "", 0},
		want{"update", "Patient", "c", "1", 201, "success", "", 1})
	if code != 200 || lines[1].ID == "" {
		t.Errorf("%d %+v", code, lines)
	}
	// A batch with a failing entry.
	batch := `{"resourceType":"Bundle","type":"batch","entry":[
		{"request":{"method":"DELETE","url":"Patient/c"}},
		{"resource":{"resourceType":"Observation","id":"nope"},"request":{"method":"PUT","url":"Observation/nope"}}]}`
	_, lines = send("sys", "POST", "/fhir", batch)
	check("batch", lines,
		want{"batch", "", "", "", 200, "success", "", -1},
		want{"delete", "Patient", "c", "2", 204, "success", "", 0},
		want{"update", "Observation", "nope", "", 400, "failed", "", 1})
	// A transaction refused whole: every write entry is denied.
	_, lines = send("doc", "POST", "/fhir", tx)
	// (Entry 1 would create Patient/c outside the ward.)
	rule := "server: Bundle.entry[1] (PUT Patient/c): the access token's scopes do not allow writing this Patient: the resource would be outside them (another patient's compartment, a type or a category the token is not granted)"
	check("transaction refused", lines,
		want{"transaction", "", "", "", 403, "denied", rule, -1},
		want{"create", "Observation", "", "", 403, "denied", rule, 0},
		want{"update", "Patient", "c", "", 403, "denied", "outside what the caller may write (" + rulesDoc + ")", 1})

	// Writes of AuditEvents are logged, and get no AuditEvent.
	ae := `{"resourceType":"AuditEvent","type":{"code":"rest"},"recorded":"2024-01-01T00:00:00Z","agent":[{"requestor":true,"who":{"display":"x"}}],"source":{"observer":{"display":"x"}}}`
	_, lines = send("sys", "POST", "/fhir/AuditEvent", ae)
	check("audit event write", lines, want{"create", "AuditEvent", "*", "1", 201, "success", "", -1})

	// The AuditEvents: one per write above (the Bundles' entries, not the
	// Bundles), the posted one, nothing for reads: 20 writes.
	res := do(t, h, "GET", "/fhir/AuditEvent?_total=accurate&_count=100", "", "Authorization", "Bearer sys")
	ss := decodeSearchset(t, res.Body.String())
	if ss.Total == nil || *ss.Total != 20+1 {
		t.Fatalf("%v AuditEvents, want 21: %.2000s", ss.Total, res.Body.String())
	}
	for _, e := range ss.Entry {
		if err := v.Validate("AuditEvent", e.Resource); err != nil {
			t.Errorf("invalid AuditEvent: %v: %s", err, e.Resource)
		}
	}
	for _, q := range []struct {
		query string
		n     int
		has   string
	}{
		{"action=D&outcome=4&agent=Practitioner/doc", 2, `"outcomeDesc":"403 Forbidden (delete); denied by policy: practitioners do not delete"`},
		{"entity=Observation/" + oa, 4, `"reference":"Observation/` + oa + `/_history/3"`},
		{"subtype=http://hl7.org/fhir/restful-interaction|create&outcome=0", 3, `"value":"backend"`},
		{"agent=Practitioner/doc&outcome=0", 2, `"altId":"doc"`},
	} {
		res := do(t, h, "GET", "/fhir/AuditEvent?_total=accurate&"+q.query, "", "Authorization", "Bearer sys")
		ss := decodeSearchset(t, res.Body.String())
		if ss.Total == nil || *ss.Total != q.n || !strings.Contains(strings.ReplaceAll(res.Body.String(), `": `, `":`), q.has) {
			t.Errorf("AuditEvent?%s: %v, want %d with %s: %.3000s", q.query, ss.Total, q.n, q.has, res.Body.String())
		}
	}
}

// TestAuditEventFailure: a write whose AuditEvent cannot be stored is
// answered as it happened; the failure is logged.
func TestAuditEventFailure(t *testing.T) {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "fhir.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	h, logs := routerOn(t, failingAudit{st}, func(d *server.Deps) { d.AuditEvents = true })
	res := do(t, h, "PUT", "/fhir/Patient/a", `{"resourceType":"Patient","id":"a"}`, "Content-Type", "application/fhir+json")
	if res.Code != 201 {
		t.Fatalf("%d %s", res.Code, res.Body)
	}
	if !strings.Contains(logs.String(), `"msg":"audit events not stored"`) || !strings.Contains(logs.String(), "audit store unavailable") {
		t.Errorf("no failure logged:\n%s", logs)
	}
	if _, err := st.Read(context.Background(), store.DefaultTenant, "Patient", "a"); err != nil {
		t.Errorf("the write is gone: %v", err)
	}
	// Without --audit-events nothing is stored, and the line is logged.
	h2, logs2 := routerOn(t, st)
	do(t, h2, "DELETE", "/fhir/Patient/a", "")
	if !strings.Contains(logs2.String(), `"msg":"audit"`) || strings.Contains(logs2.String(), "audit events not stored") {
		t.Errorf("log:\n%s", logs2)
	}
	res = do(t, h2, "GET", "/fhir/AuditEvent?_summary=count", "")
	if !strings.Contains(res.Body.String(), `"total":0`) {
		t.Errorf("AuditEvents stored: %s", res.Body)
	}
}
