package fhirspec

import (
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestReadBundle(t *testing.T) {
	type res struct {
		ID string `json:"id"`
	}
	const mixed = `{"resourceType":"Bundle","entry":[
		{"resource":{"resourceType":"StructureDefinition","id":"a"}},
		{"resource":{"resourceType":"SearchParameter","id":"p"}},
		{"resource":{"resourceType":"StructureDefinition","id":"b"}}]}`
	for _, tc := range []struct {
		name    string
		file    string
		gzip    bool // write body compressed
		body    string
		want    []string // ids
		wantErr string   // a part of the error
	}{
		{name: "plain", file: "b.json", body: mixed, want: []string{"a", "b"}},
		{name: "gzip", file: "b.json.gz", gzip: true, body: mixed, want: []string{"a", "b"}},
		{name: "none of the type", file: "b.json", body: `{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"ValueSet"}}]}`},
		{name: "not a Bundle", file: "b.json", body: `{"resourceType":"StructureDefinition"}`, wantErr: "b.json: not a Bundle"},
		{name: "not JSON", file: "b.json", body: `{"resourceType":`, wantErr: "b.json: unexpected EOF"},
		{name: "gzip name, plain body", file: "b.json.gz", body: mixed, wantErr: "b.json.gz: gzip: invalid header"},
		{name: "bad entry", file: "b.json", body: `{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"StructureDefinition","id":1}}]}`, wantErr: "b.json: entry 0: json: cannot unmarshal number"},
		{name: "missing file", wantErr: "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "absent.json")
			if tc.file != "" {
				path = filepath.Join(dir, tc.file)
				data := []byte(tc.body)
				if tc.gzip {
					var b bytes.Buffer
					zw := gzip.NewWriter(&b)
					zw.Write(data)
					zw.Close()
					data = b.Bytes()
				}
				if err := os.WriteFile(path, data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := ReadBundle[res](path, "StructureDefinition")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, r := range got {
				ids = append(ids, r.ID)
			}
			if !slices.Equal(ids, tc.want) {
				t.Errorf("ids = %q, want %q", ids, tc.want)
			}
		})
	}
}
