// Package integration drives the built fhirserver binary over HTTP, as a
// client would, against SQLite and a throwaway PostgreSQL.
package integration

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fhirserver/fhirserver/store/postgres/pgtest"
)

var (
	pg     pgtest.Harness
	binary string
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "fhirserver-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "fhirserver")
	build := exec.Command("go", "build", "-o", binary, "../cmd/fhirserver")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building fhirserver:", err)
		os.Exit(1)
	}
	code := pg.RunMain(m)
	os.RemoveAll(dir)
	os.Exit(code)
}

// backend names a database URL maker for each store.
type backend struct {
	name string
	url  func(t *testing.T) string
}

func backends() []backend {
	return []backend{
		{"sqlite", func(t *testing.T) string { return "sqlite:" + filepath.Join(t.TempDir(), "fhir.db") }},
		{"postgres", func(t *testing.T) string { return pg.NewDatabase(t) }},
	}
}

// proc is a running server.
type proc struct {
	cmd    *exec.Cmd
	base   string
	stderr *syncBuffer
	done   chan error
}

// syncBuffer is a bytes.Buffer the process writes while the test reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]byte(nil), b.buf.Bytes()...)
}

func (b *syncBuffer) String() string { return string(b.Bytes()) }

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// start runs `fhirserver serve` and waits until /healthz answers.
func start(t *testing.T, dbURL string, extra ...string) *proc {
	t.Helper()
	addr := freeAddr(t)
	base := "http://" + addr
	args := append([]string{"serve", "--addr", addr, "--base-url", base, "--database-url", dbURL, "--auth", "none"}, extra...)
	cmd := exec.Command(binary, args...)
	p := &proc{cmd: cmd, base: base, stderr: &syncBuffer{}, done: make(chan error, 1)}
	cmd.Stderr = p.stderr
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("server log:\n%s", p.stderr.String())
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		select {
		case err := <-p.done:
			t.Fatalf("server exited early: %v\n%s", err, p.stderr.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("server did not become healthy\n%s", p.stderr.String())
	return nil
}

func do(t *testing.T, method, url, contentType string, body io.Reader, headers ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func field(t *testing.T, body []byte, path ...string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("not JSON: %v: %s", err, body)
	}
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[p]
	}
	return v
}

const fhirJSON = "application/fhir+json"

func TestCRUDSession(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			p := start(t, b.url(t))
			resp, body := do(t, "POST", p.base+"/fhir/Patient", fhirJSON, strings.NewReader(`{"resourceType":"Patient","name":[{"family":"Chalmers","given":["Peter"]}],"gender":"male"}`))
			if resp.StatusCode != 201 {
				t.Fatalf("create: %d %s", resp.StatusCode, body)
			}
			loc := resp.Header.Get("Location")
			if !strings.HasPrefix(loc, p.base+"/fhir/Patient/") || !strings.HasSuffix(loc, "/_history/1") {
				t.Fatalf("Location %q", loc)
			}
			id, _ := field(t, body, "id").(string)
			if resp.Header.Get("ETag") != `W/"1"` {
				t.Fatalf("ETag %q", resp.Header.Get("ETag"))
			}

			resp, body = do(t, "GET", p.base+"/fhir/Patient/"+id, "", nil)
			if resp.StatusCode != 200 || field(t, body, "gender") != "male" {
				t.Fatalf("read: %d %s", resp.StatusCode, body)
			}
			resp, _ = do(t, "GET", p.base+"/fhir/Patient/"+id, "", nil, "If-None-Match", `W/"1"`)
			if resp.StatusCode != 304 {
				t.Fatalf("If-None-Match: %d", resp.StatusCode)
			}

			resp, body = do(t, "PUT", p.base+"/fhir/Patient/"+id, fhirJSON, strings.NewReader(`{"resourceType":"Patient","id":"`+id+`","gender":"female"}`), "If-Match", `W/"2"`)
			if resp.StatusCode != 412 || field(t, body, "resourceType") != "OperationOutcome" {
				t.Fatalf("stale If-Match: %d %s", resp.StatusCode, body)
			}
			resp, body = do(t, "PUT", p.base+"/fhir/Patient/"+id, fhirJSON, strings.NewReader(`{"resourceType":"Patient","id":"`+id+`","gender":"female"}`), "If-Match", `W/"1"`)
			if resp.StatusCode != 200 || resp.Header.Get("ETag") != `W/"2"` {
				t.Fatalf("update: %d %s", resp.StatusCode, body)
			}

			resp, body = do(t, "POST", p.base+"/fhir/Patient", fhirJSON, strings.NewReader(`{"resourceType":"Patient","nonsense":1}`))
			if resp.StatusCode != 400 || field(t, body, "resourceType") != "OperationOutcome" || !strings.Contains(string(body), "nonsense") {
				t.Fatalf("unknown element: %d %s", resp.StatusCode, body)
			}

			resp, _ = do(t, "DELETE", p.base+"/fhir/Patient/"+id, "", nil)
			if resp.StatusCode != 200 && resp.StatusCode != 204 {
				t.Fatalf("delete: %d", resp.StatusCode)
			}
			resp, body = do(t, "GET", p.base+"/fhir/Patient/"+id, "", nil)
			if resp.StatusCode != 410 || field(t, body, "resourceType") != "OperationOutcome" {
				t.Fatalf("read after delete: %d %s", resp.StatusCode, body)
			}
			resp, body = do(t, "GET", p.base+"/fhir/Patient/"+id+"/_history", "", nil)
			if resp.StatusCode != 200 || field(t, body, "total") != float64(3) {
				t.Fatalf("history: %d %s", resp.StatusCode, body)
			}
			resp, body = do(t, "GET", p.base+"/fhir/Patient/"+id+"/_history/1", "", nil)
			if resp.StatusCode != 200 || field(t, body, "gender") != "male" {
				t.Fatalf("vread: %d %s", resp.StatusCode, body)
			}
			resp, body = do(t, "GET", p.base+"/fhir/metadata", "", nil)
			if resp.StatusCode != 200 || field(t, body, "resourceType") != "CapabilityStatement" {
				t.Fatalf("metadata: %d %s", resp.StatusCode, body)
			}
		})
	}
}

// TestGracefulShutdown sends SIGTERM while a request body is still
// arriving: the request must complete and be stored, and the server must
// exit 0.
func TestGracefulShutdown(t *testing.T) {
	p := start(t, "sqlite:"+filepath.Join(t.TempDir(), "fhir.db"))
	pr, pw := io.Pipe()
	type result struct {
		status int
		body   []byte
		err    error
	}
	resc := make(chan result, 1)
	go func() {
		req, _ := http.NewRequest("POST", p.base+"/fhir/Patient", pr)
		req.Header.Set("Content-Type", fhirJSON)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			resc <- result{err: err}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		resc <- result{status: resp.StatusCode, body: b}
	}()
	if _, err := pw.Write([]byte(`{"resourceType":"Patient",`)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // the handler is now reading the body
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if _, err := pw.Write([]byte(`"gender":"other"}`)); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	r := <-resc
	if r.err != nil || r.status != 201 {
		t.Fatalf("in-flight request: status %d err %v body %s", r.status, r.err, r.body)
	}
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("server exit: %v\n%s", err, p.stderr)
		}
		p.done <- nil // for the cleanup
	case <-time.After(20 * time.Second):
		t.Fatal("server did not exit after SIGTERM")
	}
	// New connections are refused once it has stopped.
	if _, err := http.Get(p.base + "/healthz"); err == nil {
		t.Fatal("server still answering after shutdown")
	}
}

func TestExitCodes(t *testing.T) {
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--help"}, 0, "Usage"},
		{[]string{"no-such-command"}, 2, ""},
		{[]string{"serve", "--no-such-flag"}, 2, ""},
		{[]string{"migrate", "--database-url", "mysql://x"}, 2, "--database-url"},
		{[]string{"serve", "--auth", "basic", "--database-url", "sqlite:" + filepath.Join(t.TempDir(), "x.db")}, 2, "--auth"},
		{[]string{"serve", "--references", "sloppy", "--database-url", "sqlite:" + filepath.Join(t.TempDir(), "x.db")}, 2, "--references"},
		{[]string{"migrate", "--database-url", "sqlite:" + filepath.Join(t.TempDir(), "m.db")}, 0, "migrations applied"},
	}
	for _, c := range cases {
		cmd := exec.Command(binary, c.args...)
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != c.code || !strings.Contains(string(out), c.want) {
			t.Errorf("fhirserver %v: exit %d, want %d; output:\n%s", c.args, code, c.code, out)
		}
	}
}

// jsonLines reads the structured log and returns its records.
func jsonLines(b []byte) []map[string]any {
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

func TestAuthNoneWarnsLoudly(t *testing.T) {
	p := start(t, "sqlite:"+filepath.Join(t.TempDir(), "fhir.db"))
	found := false
	for _, rec := range jsonLines(p.stderr.Bytes()) {
		if rec["level"] == "WARN" && strings.Contains(fmt.Sprint(rec["msg"]), "AUTHENTICATION IS OFF") {
			found = true
		}
	}
	if !found {
		t.Fatalf("no warning about --auth none in the log:\n%s", p.stderr)
	}
}

// TestDemo starts the server as the README says and uses the sample data:
// read a demo patient, search its observations, and start again without
// duplicating anything.
func TestDemo(t *testing.T) {
	db := "sqlite:" + filepath.Join(t.TempDir(), "fhir.db")
	const patient = "1ae0605d-e5b8-4d6d-a96d-c93dcbd57e06" // demo/synthea/Luigi_Wiegand_*.json
	for round := 0; round < 2; round++ {
		p := start(t, db, "--demo")
		resp, body := do(t, "GET", p.base+"/fhir/Patient/"+patient, "", nil)
		if resp.StatusCode != 200 || resp.Header.Get("ETag") != `W/"1"` {
			t.Fatalf("round %d: demo patient: %d %s %s", round, resp.StatusCode, resp.Header.Get("ETag"), body)
		}
		resp, body = do(t, "GET", p.base+"/fhir/Observation?patient="+patient+"&_summary=count", "", nil)
		if resp.StatusCode != 200 || field(t, body, "total") != float64(31) {
			t.Fatalf("round %d: observations of the demo patient: %d %s", round, resp.StatusCode, body)
		}
		resp, body = do(t, "GET", p.base+"/fhir/_history?_summary=count", "", nil)
		if resp.StatusCode != 200 || field(t, body, "total") != float64(211) {
			t.Fatalf("round %d: the demo must load 211 resources once: %d %s", round, resp.StatusCode, body)
		}
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		<-p.done
		p.done <- nil
	}
}

// TestSlowQueryLog checks that a search slower than --slow-query is logged
// with its SQL, and its bind values only at debug level.
func TestSlowQueryLog(t *testing.T) {
	for _, tc := range []struct {
		level    string
		wantArgs bool
	}{{"info", false}, {"debug", true}} {
		t.Run(tc.level, func(t *testing.T) {
			p := start(t, "sqlite:"+filepath.Join(t.TempDir(), "fhir.db"), "--slow-query", "1ns", "--log-level", tc.level)
			resp, _ := do(t, "GET", p.base+"/fhir/Patient?family=Slowpoke", "", nil)
			if resp.StatusCode != 200 {
				t.Fatalf("search: %d", resp.StatusCode)
			}
			// The log reaches us through a pipe, after the response.
			var found map[string]any
			for deadline := time.Now().Add(5 * time.Second); found == nil && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
				for _, rec := range jsonLines(p.stderr.Bytes()) {
					if rec["msg"] == "slow search statement" && strings.Contains(fmt.Sprint(rec["sql"]), "SELECT") {
						found = rec
					}
				}
			}
			if found == nil {
				t.Fatalf("no slow search statement logged:\n%s", p.stderr)
			}
			_, hasArgs := found["args"]
			if hasArgs != tc.wantArgs || (hasArgs && !strings.Contains(fmt.Sprint(found["args"]), "slowpoke")) {
				t.Errorf("args logged = %v (%v), want %v", hasArgs, found["args"], tc.wantArgs)
			}
		})
	}
}

// TestFullTextFlag checks that --full-text makes _text and _content
// searchable and listed in the CapabilityStatement, and that without it
// they are reported as unsupported.
func TestFullTextFlag(t *testing.T) {
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			p := start(t, b.url(t), "--full-text")
			obs := `{"resourceType":"Observation","status":"final","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\">Patient reports dizziness</div>"},"code":{"text":"Vertigo screening"}}`
			resp, _ := do(t, "POST", p.base+"/fhir/Observation", "application/fhir+json", strings.NewReader(obs))
			if resp.StatusCode != 201 {
				t.Fatalf("create: %d", resp.StatusCode)
			}
			for q, want := range map[string]float64{"_text=dizziness": 1, "_content=vertigo": 1, "_text=vertigo": 0} {
				resp, body := do(t, "GET", p.base+"/fhir/Observation?"+q+"&_total=accurate", "", nil, "Prefer", "handling=strict")
				if resp.StatusCode != 200 || field(t, body, "total") != want {
					t.Errorf("%s: %d, total %v, want %v\n%s", q, resp.StatusCode, field(t, body, "total"), want, body)
				}
			}
			_, meta := do(t, "GET", p.base+"/fhir/metadata", "", nil)
			if !strings.Contains(string(meta), `"name":"_content"`) {
				t.Errorf("metadata does not list _content")
			}
		})
	}
	t.Run("off", func(t *testing.T) {
		p := start(t, "sqlite:"+filepath.Join(t.TempDir(), "fhir.db"))
		resp, body := do(t, "GET", p.base+"/fhir/Observation?_text=dizziness", "", nil, "Prefer", "handling=strict")
		if resp.StatusCode != 400 || !strings.Contains(string(body), "full-text") {
			t.Errorf("strict _text without --full-text: %d %s", resp.StatusCode, body)
		}
	})
}
