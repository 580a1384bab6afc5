package server

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/fhirserver/fhirserver/authz"
)

func TestInteractionsOf(t *testing.T) {
	cases := []struct {
		method, path string
		want         string
	}{
		{"GET", "/fhir", "[search]"},
		{"POST", "/fhir/_search", "[search]"},
		{"POST", "/fhir", fmt.Sprint(everything)},
		{"GET", "/fhir/_history", "[history]"},
		{"GET", "/fhir/Patient", "[search]"},
		{"POST", "/fhir/Patient", "[create]"},
		{"PUT", "/fhir/Patient", "[conditional-update create]"},
		{"PATCH", "/fhir/Patient", "[conditional-patch]"},
		{"DELETE", "/fhir/Patient", "[conditional-delete]"},
		{"POST", "/fhir/Patient/_search", "[search]"},
		{"GET", "/fhir/Patient/_history", "[history]"},
		{"GET", "/fhir/Patient/1", "[read]"},
		{"PUT", "/fhir/Patient/1", "[update create]"},
		{"PATCH", "/fhir/Patient/1", "[patch]"},
		{"DELETE", "/fhir/Patient/1", "[delete]"},
		{"GET", "/fhir/Patient/1/_history", "[history]"},
		{"GET", "/fhir/Patient/1/_history/2", "[vread]"},
		{"GET", "/fhir/Patient/1/Observation", "[search]"},
		{"POST", "/fhir/Patient/1/$everything", "[operation]"},
		{"GET", "/fhir/Patient/1/$everything", "[operation]"},
		{"GET", "/fhir/Patient/$everything", "[operation]"},
		{"POST", "/fhir/Patient/1/$validate", fmt.Sprint(everything)}, // not served
		{"GET", "/fhir/a/b/c/d/e", fmt.Sprint(everything)},
	}
	for _, c := range cases {
		r := httptest.NewRequest(c.method, c.path, nil)
		if got := fmt.Sprint(interactionsOf(r.Method, fhirPath(r))); got != c.want {
			t.Errorf("%s %s: %s, want %s", c.method, c.path, got, c.want)
		}
	}
}

func TestRequireUnrestricted(t *testing.T) {
	h := &Handler{log: slog.New(slog.DiscardHandler)}
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) })
	cases := []struct {
		name   string
		caller *authz.Caller
		method string
		path   string
		want   int
	}{
		{"system wildcard read", &authz.Caller{Scopes: []string{"system/*.rs"}}, "GET", "/fhir/Observation", http.StatusTeapot},
		{"system wildcard cannot write", &authz.Caller{Scopes: []string{"system/*.rs"}}, "POST", "/fhir/Observation", http.StatusForbidden},
		{"system wildcard may send a bundle (its entries are decided)", &authz.Caller{Scopes: []string{"system/*.rs"}}, "POST", "/fhir", http.StatusTeapot},
		{"system full access runs a bundle", &authz.Caller{Scopes: []string{"system/*.cruds"}}, "POST", "/fhir", http.StatusTeapot},
		{"v1 system/*.*", &authz.Caller{Scopes: []string{"system/*.*"}}, "DELETE", "/fhir/Patient/1", http.StatusTeapot},
		// Search, read, vread and history apply the caller's filter in the handler:
		// a restricted token passes here (TestAccessMatrix checks what it
		// sees).
		{"one type only may search", &authz.Caller{Scopes: []string{"system/Observation.rs"}}, "GET", "/fhir/Observation", http.StatusTeapot},
		{"patient-scoped search", &authz.Caller{Scopes: []string{"patient/*.rs"}, Patient: "p1"}, "GET", "/fhir/Observation", http.StatusTeapot},
		{"patient-scoped compartment search", &authz.Caller{Scopes: []string{"patient/*.rs"}, Patient: "p1"}, "GET", "/fhir/Patient/p2/Observation", http.StatusTeapot},
		{"patient-scoped system search", &authz.Caller{Scopes: []string{"patient/*.rs"}, Patient: "p1"}, "GET", "/fhir", http.StatusTeapot},
		{"patient-scoped read by id", &authz.Caller{Scopes: []string{"patient/*.rs"}, Patient: "p1"}, "GET", "/fhir/Patient/p1", http.StatusTeapot},
		{"patient-scoped vread", &authz.Caller{Scopes: []string{"patient/*.rs"}, Patient: "p1"}, "GET", "/fhir/Patient/p1/_history/1", http.StatusTeapot},
		{"granular scope may search", &authz.Caller{Scopes: []string{"system/Observation.rs?category=laboratory"}}, "GET", "/fhir/Observation", http.StatusTeapot},
		{"read-only scope cannot search", &authz.Caller{Scopes: []string{"patient/*.r"}, Patient: "p1"}, "GET", "/fhir/Observation", http.StatusForbidden},
		{"search-only scope cannot read", &authz.Caller{Scopes: []string{"patient/*.s"}, Patient: "p1"}, "GET", "/fhir/Patient/p1", http.StatusForbidden},
		// $everything: read and search, applied by the handler.
		{"patient-scoped $everything", &authz.Caller{Scopes: []string{"patient/*.rs"}, Patient: "p1"}, "GET", "/fhir/Patient/p2/$everything", http.StatusTeapot},
		{"patient-scoped type-level $everything", &authz.Caller{Scopes: []string{"patient/*.rs"}, Patient: "p1"}, "POST", "/fhir/Patient/$everything", http.StatusTeapot},
		{"read-only scope has no $everything", &authz.Caller{Scopes: []string{"patient/*.r"}, Patient: "p1"}, "GET", "/fhir/Patient/p1/$everything", http.StatusForbidden},
		{"search-only scope has no $everything", &authz.Caller{Scopes: []string{"patient/*.s"}, Patient: "p1"}, "GET", "/fhir/Patient/p1/$everything", http.StatusForbidden},
		{"patient-scoped history", &authz.Caller{Scopes: []string{"patient/*.rs"}, Patient: "p1"}, "GET", "/fhir/Patient/p1/_history", http.StatusTeapot},
		{"patient-scoped system history", &authz.Caller{Scopes: []string{"patient/*.rs"}, Patient: "p1"}, "GET", "/fhir/_history", http.StatusTeapot},
		{"patient-scoped create", &authz.Caller{Scopes: []string{"patient/*.cruds"}, Patient: "p1"}, "POST", "/fhir/Observation", http.StatusTeapot},
		{"patient-scoped update", &authz.Caller{Scopes: []string{"patient/*.cruds"}, Patient: "p1"}, "PUT", "/fhir/Observation/1", http.StatusTeapot},
		{"update without create is refused", &authz.Caller{Scopes: []string{"patient/*.ruds"}, Patient: "p1"}, "PUT", "/fhir/Observation/1", http.StatusForbidden},
		{"patient-scoped patch", &authz.Caller{Scopes: []string{"patient/*.*"}, Patient: "p1"}, "PATCH", "/fhir/Observation/1", http.StatusTeapot},
		{"patient-scoped conditional patch", &authz.Caller{Scopes: []string{"patient/*.*"}, Patient: "p1"}, "PATCH", "/fhir/Observation?code=x", http.StatusTeapot},
		{"conditional patch needs patch", &authz.Caller{Scopes: []string{"patient/*.crds"}, Patient: "p1"}, "PATCH", "/fhir/Observation?code=x", http.StatusForbidden},
		{"patient-scoped delete", &authz.Caller{Scopes: []string{"patient/*.cruds"}, Patient: "p1"}, "DELETE", "/fhir/Observation/1", http.StatusTeapot},
		{"patient-scoped conditional update", &authz.Caller{Scopes: []string{"patient/*.cruds"}, Patient: "p1"}, "PUT", "/fhir/Observation?code=x", http.StatusTeapot},
		{"conditional update needs update", &authz.Caller{Scopes: []string{"patient/*.crds"}, Patient: "p1"}, "PUT", "/fhir/Observation?code=x", http.StatusForbidden},
		{"patient-scoped v1 bundle", &authz.Caller{Scopes: []string{"patient/*.*"}, Patient: "p1"}, "POST", "/fhir", http.StatusTeapot},
		{"patient-scoped conditional delete", &authz.Caller{Scopes: []string{"patient/*.cruds"}, Patient: "p1"}, "DELETE", "/fhir/Observation?code=x", http.StatusTeapot},
		{"conditional delete needs delete", &authz.Caller{Scopes: []string{"patient/*.crus"}, Patient: "p1"}, "DELETE", "/fhir/Observation?code=x", http.StatusForbidden},
		{"patient-scoped bundle", &authz.Caller{Scopes: []string{"patient/*.cruds"}, Patient: "p1"}, "POST", "/fhir", http.StatusTeapot},
		{"a bundle without any scope still needs a caller", &authz.Caller{}, "POST", "/fhir", http.StatusTeapot},
		// Everything else (operations) still needs unrestricted scopes.
		{"patient-scoped unknown path is refused", &authz.Caller{Scopes: []string{"patient/*.*"}, Patient: "p1"}, "GET", "/fhir/a/b/c/d/e", http.StatusForbidden},
		{"patient-scoped operation is refused", &authz.Caller{Scopes: []string{"patient/*.*"}, Patient: "p1"}, "POST", "/fhir/Observation/$validate", http.StatusForbidden},
		{"system operation", &authz.Caller{Scopes: []string{"system/*.*"}}, "POST", "/fhir/Observation/$validate", http.StatusTeapot},
		{"granular history", &authz.Caller{Scopes: []string{"system/Observation.rs?category=laboratory"}}, "GET", "/fhir/Observation/_history", http.StatusTeapot},
		{"search-only scope has no history", &authz.Caller{Scopes: []string{"patient/*.s"}, Patient: "p1"}, "GET", "/fhir/_history", http.StatusForbidden},
		{"no scopes", &authz.Caller{}, "GET", "/fhir/Patient/1", http.StatusForbidden},
		{"no caller", nil, "GET", "/fhir/Patient/1", http.StatusUnauthorized},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest(c.method, c.path, nil)
			if c.caller != nil {
				r = r.WithContext(withCaller(r.Context(), c.caller))
			}
			w := httptest.NewRecorder()
			h.requireUnrestricted(ok).ServeHTTP(w, r)
			if w.Code != c.want {
				t.Fatalf("status %d, want %d: %s", w.Code, c.want, w.Body)
			}
		})
	}
}
