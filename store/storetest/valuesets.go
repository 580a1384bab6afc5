package storetest

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/fhirserver/fhirserver/fhir"
	"github.com/fhirserver/fhirserver/fhir/search"
	"github.com/fhirserver/fhirserver/store"
)

// Token :in and :not-in with ValueSets stored on the server (and the
// CodeSystems they draw on), in a tenant of their own; the expected
// results are worked out by hand from the resources below.

const (
	vsTenant      = "valuesets"
	vsOtherTenant = "valuesets-other"
	colors        = "http://example.org/cs/colors"
	snomed        = "http://snomed.info/sct"
	obsCategory   = "http://terminology.hl7.org/CodeSystem/observation-category"
	ldlCodes      = "http://hl7.org/fhir/ValueSet/ldlcholesterol-codes" // spec: LOINC 13457-7, 18262-6
)

// vsObservations are coded with LOINC, with the colors code system (warm >
// red > crimson, scarlet; warm > orange, yellow; cool > blue, green), with
// v3-ActCode and observation-category of the spec, and not at all.
var vsObservations = map[string]string{
	"s1":  `{"system":"http://loinc.org","code":"8302-2"}`,
	"s2":  `{"system":"http://loinc.org","code":"29463-7"}`,
	"s3":  `{"system":"http://loinc.org","code":"8867-4"}`,
	"s4":  `{"system":"http://loinc.org","code":"18262-6"}`,
	"s5":  `{"system":"http://example.org/cs/colors","code":"red"}`,
	"s6":  `{"system":"http://example.org/cs/colors","code":"crimson"}`,
	"s7":  `{"system":"http://example.org/cs/colors","code":"blue"}`,
	"s8":  `{"system":"http://example.org/cs/colors","code":"warm"}`,
	"s9":  ``, // text only: no token
	"s10": `{"system":"http://loinc.org","code":"LG"}`,
	"s11": `{"system":"http://terminology.hl7.org/CodeSystem/v3-ActCode","code":"AMB"}`,
	"s12": `{"system":"http://terminology.hl7.org/CodeSystem/observation-category","code":"laboratory"}`,
	"s13": `{"system":"http://snomed.info/sct","code":"27113001"}`,
}

func vsObservation(id string) string {
	coding := vsObservations[id]
	code := `{"text":"no code"}`
	if coding != "" {
		code = `{"coding":[` + coding + `]}`
	}
	return `{"resourceType":"Observation","id":"` + id + `","status":"final","code":` + code + `}`
}

func valueSet(id, url, version, rest string) string {
	v := ""
	if version != "" {
		v = `,"version":"` + version + `"`
	}
	return `{"resourceType":"ValueSet","id":"` + id + `","url":"` + url + `"` + v + `,"status":"active",` + rest + `}`
}

func include(parts ...string) string {
	return `"compose":{"include":[` + strings.Join(parts, ",") + `]}`
}

func concepts(system string, codes ...string) string {
	cs := make([]string, len(codes))
	for i, c := range codes {
		cs[i] = `{"code":"` + c + `"}`
	}
	return `{"system":"` + system + `","concept":[` + strings.Join(cs, ",") + `]}`
}

func filter(system, op, value string) string {
	return `{"system":"` + system + `","filter":[{"property":"concept","op":"` + op + `","value":"` + value + `"}]}`
}

func vsURL(name string) string { return "http://example.org/vs/" + name }

// vsResources are the ValueSets and CodeSystems of vsTenant.
var vsResources = []string{
	`{"resourceType":"CodeSystem","id":"colors","url":"http://example.org/cs/colors","status":"active","content":"complete","concept":[` +
		`{"code":"warm","concept":[{"code":"red","concept":[{"code":"crimson"},{"code":"scarlet"}]},{"code":"orange"},{"code":"yellow"}]},` +
		`{"code":"cool","concept":[{"code":"blue"},{"code":"green"}]}]}`,
	`{"resourceType":"CodeSystem","id":"colors-fragment","url":"http://example.org/cs/fragment","status":"active","content":"fragment","concept":[{"code":"red"}]}`,
	valueSet("vitals", vsURL("vitals"), "", include(concepts(loinc, "8302-2", "29463-7"))),
	// The expansion wins over the compose; the abstract group is not a member.
	valueSet("expanded", vsURL("expanded"), "", include(concepts(loinc, "8302-2"))+
		`,"expansion":{"timestamp":"2024-01-01T00:00:00Z","contains":[{"system":"http://loinc.org","code":"LG","abstract":true,"contains":[{"system":"http://loinc.org","code":"8867-4"}]},{"system":"http://loinc.org","code":"18262-6"}]}`),
	valueSet("with-spec", vsURL("with-spec"), "", include(`{"valueSet":["`+vitalSigns+`"]}`, concepts(loinc, "18262-6"))),
	valueSet("mixed", vsURL("mixed"), "", include(concepts(loinc, "8302-2", "18262-6", "13457-7"), concepts(colors, "red"))),
	// Includes the spec's url, which a stored value set replaces here.
	valueSet("includes-ldl", vsURL("includes-ldl"), "", include(`{"valueSet":["`+ldlCodes+`"]}`)),
	valueSet("nested", vsURL("nested"), "", include(`{"valueSet":["`+vsURL("vitals")+`"]}`, concepts(colors, "blue"))),
	valueSet("intersection", vsURL("intersection"), "", include(`{"valueSet":["`+vsURL("with-spec")+`","`+vsURL("mixed")+`"]}`)),
	valueSet("warm-not-blue", vsURL("colors-but-blue"), "", `"compose":{"include":[{"system":"`+colors+`"}],"exclude":[`+concepts(colors, "blue")+`]}`),
	valueSet("is-a", vsURL("is-a-red"), "", include(filter(colors, "is-a", "red"))),
	valueSet("descendent-of", vsURL("descendent-of-warm"), "", include(filter(colors, "descendent-of", "warm"))),
	valueSet("spec-filter", vsURL("encounter-codes"), "", include(filter(actCode, "is-a", "_ActEncounterCode"))),
	valueSet("spec-system", vsURL("categories"), "", include(`{"system":"`+obsCategory+`"}`)),
	valueSet("v19", vsURL("versioned"), "1.9", include(concepts(loinc, "8302-2"))),
	valueSet("v110", vsURL("versioned"), "1.10", include(concepts(loinc, "29463-7"))),
	valueSet("v12", vsURL("versioned"), "1.2", include(concepts(loinc, "8867-4"))),
	// Replaces the spec's value set of the same url in this tenant only.
	valueSet("ldl", ldlCodes, "", include(concepts(loinc, "8867-4"))),
	valueSet("cycle-a", vsURL("cycle-a"), "", include(`{"valueSet":["`+vsURL("cycle-b")+`"]}`)),
	valueSet("cycle-b", vsURL("cycle-b"), "", include(`{"valueSet":["`+vsURL("cycle-a")+`"]}`)),
	valueSet("snomed", vsURL("snomed"), "", include(`{"system":"`+snomed+`"}`)),
	valueSet("snomed-filter", vsURL("snomed-filter"), "", include(filter(snomed, "is-a", "404684003"))),
	valueSet("regex", vsURL("regex"), "", include(filter(colors, "regex", "r.*"))),
	valueSet("fragment", vsURL("fragment"), "", include(`{"system":"http://example.org/cs/fragment"}`)),
	valueSet("includes-bad", vsURL("includes-bad"), "", include(`{"valueSet":["`+vsURL("snomed")+`"]}`)),
	valueSet("includes-unknown", vsURL("includes-unknown"), "", include(`{"valueSet":["http://example.org/vs/nowhere"]}`)),
	valueSet("paged", vsURL("paged"), "", `"expansion":{"timestamp":"2024-01-01T00:00:00Z","total":40,"offset":0,"contains":[{"system":"http://loinc.org","code":"8302-2"}]}`),
	valueSet("deleted", vsURL("deleted"), "", include(concepts(loinc, "8302-2"))),
}

// vsOtherResources are in vsOtherTenant: a value set of the same url as
// one of vsTenant, with other codes, and one only there.
var vsOtherResources = []string{
	valueSet("vitals", vsURL("vitals"), "", include(concepts(loinc, "18262-6"))),
	valueSet("other-only", vsURL("other-only"), "", include(concepts(loinc, "8302-2"))),
}

func loadValueSets(t *testing.T, s store.Store) {
	ctx := context.Background()
	put := func(tenant, body string) {
		typ, id, err := fhir.Envelope([]byte(body))
		must(t, err)
		if _, _, err := s.Update(ctx, store.Write{Tenant: tenant, Type: typ, ID: id, Body: []byte(body)}); err != nil {
			t.Fatalf("loading %s/%s: %v", typ, id, err)
		}
	}
	for id := range vsObservations {
		put(vsTenant, vsObservation(id))
		put(vsOtherTenant, vsObservation(id))
	}
	for _, body := range vsResources {
		put(vsTenant, body)
	}
	for _, body := range vsOtherResources {
		put(vsOtherTenant, body)
	}
	// A code system of more codes than an expansion may have.
	var big strings.Builder
	big.WriteString(`{"resourceType":"CodeSystem","id":"big","url":"http://example.org/cs/big","status":"active","content":"complete","concept":[`)
	for i := 0; i <= 10000; i++ {
		if i > 0 {
			big.WriteByte(',')
		}
		fmt.Fprintf(&big, `{"code":"c%d"}`, i)
	}
	big.WriteString(`]}`)
	put(vsTenant, big.String())
	put(vsTenant, valueSet("big", vsURL("big"), "", include(`{"system":"http://example.org/cs/big"}`)))
	if _, err := s.Delete(ctx, store.Delete{Tenant: vsTenant, Type: "ValueSet", ID: "deleted"}); err != nil {
		t.Fatalf("deleting ValueSet/deleted: %v", err)
	}
}

func testStoredValueSets(t *testing.T, s store.Store, se store.Searcher) {
	O := func(ids ...string) []string { return keys("Observation", ids...) }
	all := make([]string, 0, len(vsObservations))
	for id := range vsObservations {
		all = append(all, id)
	}
	allBut := func(ids ...string) []string {
		var out []string
		for _, id := range all {
			if !containsString(ids, id) {
				out = append(out, id)
			}
		}
		return O(out...)
	}
	in := func(u string) string { return "code:in=" + url.QueryEscape(u) }
	t.Run("Match", func(t *testing.T) {
		runCases(t, se, vsTenant, []searchCase{
			{name: "concept list", types: "Observation", query: in(vsURL("vitals")), want: O("s1", "s2")},
			{name: "by reference", types: "Observation", query: in("ValueSet/vitals"), want: O("s1", "s2")},
			{name: "expansion", types: "Observation", query: in(vsURL("expanded")), want: O("s3", "s4")},
			{name: "include a spec value set", types: "Observation", query: in(vsURL("with-spec")), want: O("s1", "s2", "s3", "s4")},
			{name: "include a replaced spec value set", types: "Observation", query: in(vsURL("includes-ldl")), want: O("s3")},
			{name: "include a stored value set", types: "Observation", query: in(vsURL("nested")), want: O("s1", "s2", "s7")},
			{name: "value sets intersected", types: "Observation", query: in(vsURL("intersection")), want: O("s1", "s4")},
			{name: "stored code system, exclude", types: "Observation", query: in(vsURL("colors-but-blue")), want: O("s5", "s6", "s8")},
			{name: "is-a in a stored code system", types: "Observation", query: in(vsURL("is-a-red")), want: O("s5", "s6")},
			{name: "descendent-of in a stored code system", types: "Observation", query: in(vsURL("descendent-of-warm")), want: O("s5", "s6")},
			{name: "is-a in a spec code system", types: "Observation", query: in(vsURL("encounter-codes")), want: O("s11")},
			{name: "a whole spec code system", types: "Observation", query: in(vsURL("categories")), want: O("s12")},
			{name: "latest version", types: "Observation", query: in(vsURL("versioned")), want: O("s2")},
			{name: "version 1.9", types: "Observation", query: in(vsURL("versioned") + "|1.9"), want: O("s1")},
			{name: "version 1.10", types: "Observation", query: in(vsURL("versioned") + "|1.10"), want: O("s2")},
			{name: "stored replaces spec", types: "Observation", query: in(ldlCodes), want: O("s3")},
			{name: "either", types: "Observation", query: "code:in=" + url.QueryEscape(vsURL("vitals")) + "," + url.QueryEscape(vsURL("is-a-red")), want: O("s1", "s2", "s5", "s6")},
			{name: "a spec value set still", types: "Observation", query: in(vitalSigns), want: O("s1", "s2", "s3")},
			{name: "not-in", types: "Observation", query: "code:not-in=" + url.QueryEscape(vsURL("vitals")), want: allBut("s1", "s2")},
			{name: "not-in an expansion", types: "Observation", query: "code:not-in=" + url.QueryEscape(vsURL("expanded")), want: allBut("s3", "s4")},
			{name: "in and not-in", types: "Observation", query: in(vsURL("colors-but-blue")) + "&code:not-in=" + url.QueryEscape(vsURL("is-a-red")), want: O("s8")},
		})
	})
	t.Run("OtherTenant", func(t *testing.T) {
		// The same url means another value set there; the spec's is not replaced.
		runCases(t, se, vsOtherTenant, []searchCase{
			{name: "its own value set", types: "Observation", query: in(vsURL("vitals")), want: O("s4")},
			{name: "the spec's", types: "Observation", query: in(ldlCodes), want: O("s4")},
			{name: "only there", types: "Observation", query: in(vsURL("other-only")), want: O("s1")},
		})
	})
	t.Run("Errors", func(t *testing.T) {
		for _, tc := range []struct {
			name, query string
			kind        fhir.Kind
			msg         string
		}{
			{"in another tenant only", in(vsURL("other-only")), fhir.KindInvalid, "value set http://example.org/vs/other-only is not known here"},
			{"deleted", in(vsURL("deleted")), fhir.KindInvalid, "value set http://example.org/vs/deleted is not known here"},
			{"unknown reference", in("ValueSet/nope"), fhir.KindInvalid, "value set ValueSet/nope is not known here"},
			{"reference to another tenant", in("ValueSet/other-only"), fhir.KindInvalid, "value set ValueSet/other-only is not known here"},
			{"version not stored", in(vsURL("versioned") + "|2"), fhir.KindInvalid, "value set http://example.org/vs/versioned|2 is not known here"},
			{"cycle", in(vsURL("cycle-a")), fhir.KindInvalid, "value set http://example.org/vs/cycle-a includes itself (http://example.org/vs/cycle-a → http://example.org/vs/cycle-b → http://example.org/vs/cycle-a)"},
			{"unknown system", in(vsURL("snomed")), fhir.KindNotSupported, "value set http://example.org/vs/snomed cannot be expanded here: compose.include[0]: the concepts of code system http://snomed.info/sct are not known here"},
			{"unknown system filtered", "code:not-in=" + url.QueryEscape(vsURL("snomed-filter")), fhir.KindNotSupported, "the concepts of code system http://snomed.info/sct are not known here"},
			{"unsupported filter", in(vsURL("regex")), fhir.KindNotSupported, "its filter (concept regex r.*) is not supported here"},
			{"fragment", in(vsURL("fragment")), fhir.KindNotSupported, "the code system http://example.org/cs/fragment stored on this server does not list all its concepts"},
			{"includes one that cannot be expanded", in(vsURL("includes-bad")), fhir.KindNotSupported, "value set http://example.org/vs/includes-bad cannot be expanded here: compose.include[0]: value set http://example.org/vs/snomed cannot be expanded here"},
			{"includes an unknown one", in(vsURL("includes-unknown")), fhir.KindInvalid, "value set http://example.org/vs/nowhere is not known here"},
			{"partial expansion", in(vsURL("paged")), fhir.KindNotSupported, "value set http://example.org/vs/paged cannot be expanded here: its expansion is partial"},
			{"too large", in(vsURL("big")), fhir.KindNotSupported, "too many to expand here"},
			{"spec value set that needs SNOMED CT", "code:in=http://hl7.org/fhir/ValueSet/condition-code", fhir.KindNotSupported,
				"value set http://hl7.org/fhir/ValueSet/condition-code cannot be expanded without a terminology server"},
			{"spec value set of another version", "code:in=" + url.QueryEscape(vitalSigns+"|3.0.1"), fhir.KindInvalid, "is known here in version 4.0.1, not 3.0.1"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := se.Search(context.Background(), vsTenant, query(t, []string{"Observation"}, nil, tc.query))
				wantKind(t, err, tc.kind)
				if !strings.Contains(fhir.MessageOf(err), tc.msg) {
					t.Fatalf("error %q, want it to contain %q", fhir.MessageOf(err), tc.msg)
				}
			})
		}
	})
	t.Run("WithoutParse", func(t *testing.T) {
		// The store expands the value set a query names, however built.
		def, ok := fhir.LookupSearchParam("Observation", "code")
		if !ok {
			t.Fatal("Observation has no code parameter")
		}
		q := &search.Query{Types: []string{"Observation"}, Clauses: []search.Clause{{Param: def, Code: "code", Type: def.Type, Modifier: search.ModIn,
			Values: []search.Value{{Raw: vsURL("vitals"), URL: vsURL("vitals")}}}}}
		if got := searchAll(t, se, vsTenant, q); !sameSet(got, O("s1", "s2")) {
			t.Fatalf("got %v, want s1 and s2", got)
		}
	})
	t.Run("AccessFilter", func(t *testing.T) {
		// A caller who may read Observations but not ValueSets still gets
		// the value set's codes.
		fs, ok := se.(store.FilteredSearcher)
		if !ok {
			t.Skip("the store does not implement store.FilteredSearcher")
		}
		q := query(t, []string{"Observation"}, nil, in(vsURL("vitals")))
		page, err := fs.SearchAccess(context.Background(), vsTenant, q, store.Filter{Grants: []store.Grant{{Types: []string{"Observation"}}}})
		must(t, err)
		if got := keysOf(page.Matches); !sameSet(got, O("s1", "s2")) {
			t.Fatalf("got %v, want s1 and s2", got)
		}
	})
	t.Run("FollowsWrites", func(t *testing.T) {
		// No cache: a changed value set applies to the next search, and
		// one written in a transaction to the transaction's searches.
		ctx := context.Background()
		u := vsURL("changing")
		write := func(codes ...string) {
			body := valueSet("changing", u, "", include(concepts(loinc, codes...)))
			_, _, err := s.Update(ctx, store.Write{Tenant: vsTenant, Type: "ValueSet", ID: "changing", Body: []byte(body)})
			must(t, err)
		}
		check := func(want ...string) {
			t.Helper()
			if got := searchAll(t, se, vsTenant, query(t, []string{"Observation"}, nil, in(u))); !sameSet(got, O(want...)) {
				t.Fatalf("got %v, want %v", got, O(want...))
			}
		}
		write("8302-2")
		check("s1")
		write("29463-7", "8867-4")
		check("s2", "s3")
		tr, ok := s.(store.Transactor)
		if !ok {
			return
		}
		err := tr.Transact(ctx, vsTenant, func(tx store.Tx) error {
			body := valueSet("in-tx", vsURL("in-tx"), "", include(concepts(loinc, "18262-6")))
			if _, err := tx.Create(ctx, store.Write{Type: "ValueSet", ID: "in-tx", Body: []byte(body)}); err != nil {
				return err
			}
			page, err := tx.Search(ctx, query(t, []string{"Observation"}, nil, in(vsURL("in-tx"))))
			if err != nil {
				return err
			}
			if got := keysOf(page.Matches); !sameSet(got, O("s4")) {
				return fmt.Errorf("in the transaction: got %v, want s4", got)
			}
			return nil
		})
		must(t, err)
	})
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
