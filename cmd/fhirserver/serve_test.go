package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestServeRefusesBadPolicy: an invalid policy file stops serve with exit
// status 2 and a message naming the file, the line and the rule, before
// the database is opened.
func TestServeRefusesBadPolicy(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(bad, []byte("rules:\n  - name: fine\n    allow: read\n  - name: typo\n    allow: [reed]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	db := "sqlite:" + filepath.Join(dir, "fhir.db")
	for _, tc := range []struct {
		name string
		args []string
		env  string
		want []string
	}{
		{"flag", []string{"serve", "--policy", bad}, "", []string{"policy.yaml: line 4", `rule 2 ("typo")`, `unknown permission "reed"`}},
		{"environment", []string{"serve"}, bad, []string{"line 4", `unknown permission "reed"`}},
		{"missing file", []string{"serve", "--policy", filepath.Join(dir, "nope.yaml")}, "", []string{"nope.yaml"}},
		{"without auth", []string{"serve", "--auth", "none", "--policy", bad}, "", []string{"--policy needs --auth smart"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("FHIR_POLICY", tc.env)
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), append(tc.args, "--database-url", db, "--addr", "127.0.0.1:0"), &stdout, &stderr)
			if code != 2 {
				t.Fatalf("exit %d, want 2; stderr: %s", code, stderr.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr does not contain %q: %s", w, stderr.String())
				}
			}
			if _, err := os.Stat(filepath.Join(dir, "fhir.db")); err == nil {
				t.Error("the database was opened before the policy was checked")
			}
		})
	}
}
