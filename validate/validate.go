// Package validate checks that a request or file body is a valid FHIR R4
// resource. It is the only importer of github.com/google/fhir/go: the body is
// parsed with that library's R4 JSON unmarshaller (with its extended
// validation: primitive formats, required elements, reference target types)
// and the library's errors are translated into *fhir.Error values whose
// messages name the problem and where it is, without Go or protobuf details.
//
// A structural pre-pass of our own adds what the library lets through:
// duplicate properties, empty strings, objects and arrays, null values,
// property names that differ only by the case of their first letter, and
// excessive nesting. It also checks resourceType before the library runs, so
// that a missing, unknown or unexpected type gets a clear message. Required
// elements, primitive formats and reference types of contained resources,
// which the library does not check, are checked here too.
//
// Not checked (limits of github.com/google/fhir/go v0.7.4 that remain):
// invariants (FHIRPath constraints such as obs-6 or dom-2, so a contained
// resource may itself contain resources), bindings other than required
// bindings on code elements, profiles, the content of the XHTML narrative,
// the syntax of uri/url values beyond url.Parse, whether references resolve
// (urn:uuid and #fragment references are accepted as they are), and the
// contained resources of Bundle entries beyond parsing. The library also
// accepts "fragment" inside a Reference (a member of its protobuf model) and
// rejects null placeholders in arrays aligned with "_element" arrays, which
// FHIR allows.
package validate

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/google/fhir/go/fhirversion"
	"github.com/google/fhir/go/jsonformat"
	"github.com/google/fhir/go/jsonformat/fhirvalidate"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"

	rpb "github.com/google/fhir/go/proto/google/fhir/proto/r4/core/resources/bundle_and_contained_resource_go_proto"

	"github.com/fhirserver/fhirserver/fhir"
)

// maxIssues caps how many problems one error lists.
const maxIssues = 10

// maxDepth caps how deeply objects and arrays may nest in a body.
const maxDepth = 64

// Validator checks resource bodies. It is safe for concurrent use: the
// library's Unmarshaller keeps no per-call state (in v0.7.4 its fields are
// only read, every call gets a fresh error reporter, and its shared field
// cache is guarded by a mutex), so one instance is shared by all callers.
type Validator struct {
	u *jsonformat.Unmarshaller
	// resources maps each R4 resource type name to its message descriptor,
	// taken from the library's ContainedResource (not a hand-typed list).
	resources map[string]protoreflect.MessageDescriptor
}

// New returns a Validator for FHIR R4.
func New() (*Validator, error) {
	u, err := jsonformat.NewUnmarshaller("UTC", fhirversion.R4)
	if err != nil {
		return nil, fmt.Errorf("creating the FHIR R4 unmarshaller: %w", err)
	}
	v := &Validator{u: u, resources: map[string]protoreflect.MessageDescriptor{}}
	cr := (&rpb.ContainedResource{}).ProtoReflect().Descriptor()
	oneof := cr.Oneofs().ByName("oneof_resource")
	if oneof == nil {
		return nil, errors.New("creating the FHIR R4 validator: ContainedResource has no oneof_resource")
	}
	for i := 0; i < oneof.Fields().Len(); i++ {
		if md := oneof.Fields().Get(i).Message(); md != nil {
			v.resources[string(md.Name())] = md
		}
	}
	if len(v.resources) < 140 {
		return nil, fmt.Errorf("creating the FHIR R4 validator: only %d resource types found", len(v.resources))
	}
	return v, nil
}

// KnownType reports whether t is an R4 resource type.
func (v *Validator) KnownType(t string) bool {
	_, ok := v.resources[t]
	return ok
}

// Validate checks that body is a valid R4 resource of type resourceType (any
// type when resourceType is empty). The error, if any, is a *fhir.Error of
// kind KindInvalid; its Expression lists the paths of the problems found.
func (v *Validator) Validate(resourceType string, body []byte) error {
	sc := scanner{buf: body}
	sc.scan()
	switch {
	case sc.syntax:
		return syntaxError(body)
	case sc.notObject:
		return fhir.Errorf(fhir.KindInvalid, "a resource must be a JSON object")
	case sc.fatal != nil:
		return toError([]issue{*sc.fatal})
	case !sc.hasType:
		return &fhir.Error{Kind: fhir.KindInvalid, Message: "missing resourceType", Expression: []string{"resourceType"}}
	case sc.typeNotString:
		return &fhir.Error{Kind: fhir.KindInvalid, Message: "resourceType must be a string", Expression: []string{"resourceType"}}
	case !v.KnownType(sc.resourceType):
		return &fhir.Error{Kind: fhir.KindInvalid, Message: fmt.Sprintf("unknown resourceType %q", truncate(sc.resourceType)), Expression: []string{"resourceType"}}
	case resourceType != "" && sc.resourceType != resourceType:
		return &fhir.Error{Kind: fhir.KindInvalid, Message: fmt.Sprintf("resourceType %q does not match the expected %q", sc.resourceType, resourceType), Expression: []string{"resourceType"}}
	}
	issues := sc.issues

	res, err := v.u.Unmarshal(body)
	if err != nil {
		lib, ok := libraryIssues(err)
		if !ok {
			// Not one of the library's validation errors: keep the cause for
			// the logs, show a generic message.
			return &fhir.Error{Kind: fhir.KindInvalid, Message: fmt.Sprintf("%s could not be parsed as a FHIR R4 resource", sc.resourceType), Err: err}
		}
		issues = append(issues, v.translate(lib)...)
	}
	if res != nil {
		issues = append(issues, v.validateContained(res)...)
	}
	if len(issues) == 0 {
		return nil
	}
	return toError(issues)
}

// validateContained runs the library's validation on contained resources,
// which it skips because they are stored as packed Any messages.
func (v *Validator) validateContained(res proto.Message) []issue {
	m := res.ProtoReflect()
	od := m.Descriptor().Oneofs().ByName("oneof_resource")
	if od == nil {
		return nil
	}
	fd := m.WhichOneof(od)
	if fd == nil {
		return nil
	}
	r := m.Get(fd).Message()
	cf := r.Descriptor().Fields().ByName("contained")
	if cf == nil || !cf.IsList() || !r.Has(cf) {
		return nil
	}
	var issues []issue
	root := string(r.Descriptor().Name())
	list := r.Get(cf).List()
	for i := 0; i < list.Len(); i++ {
		a, ok := list.Get(i).Message().Interface().(*anypb.Any)
		if !ok {
			continue
		}
		inner, err := a.UnmarshalNew()
		if err != nil {
			continue // the parser built it; nothing a client can fix here
		}
		rep := &reporter{}
		if err := fhirvalidate.ValidateWithErrorReporter(inner, rep); err != nil {
			rep.add(err)
		}
		prefix := fmt.Sprintf("%s.contained[%d]", root, i)
		for _, li := range rep.issues {
			// The library's paths start with the contained resource's type.
			if _, rest, ok := strings.Cut(li.Path, "."); ok {
				li.Path = prefix + "." + rest
			} else {
				li.Path = prefix
			}
			issues = append(issues, v.translate([]libIssue{li})...)
		}
	}
	return issues
}

// reporter collects the library's validation errors.
type reporter struct{ issues []libIssue }

func (r *reporter) add(err error) {
	if lib, ok := libraryIssues(err); ok {
		r.issues = append(r.issues, lib...)
		return
	}
	r.issues = append(r.issues, libIssue{Details: "invalid element"})
}

func (r *reporter) ReportValidationError(path string, err error) error {
	n := len(r.issues)
	r.add(err)
	for i := n; i < len(r.issues); i++ {
		if r.issues[i].Path == "" {
			r.issues[i].Path = path
		}
	}
	return nil
}

func (r *reporter) ReportValidationWarning(string, error) error { return nil }

// syntaxError describes why body is not JSON, with the byte offset.
func syntaxError(body []byte) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return fhir.Errorf(fhir.KindInvalid, "body is empty")
	}
	var raw json.RawMessage
	err := json.Unmarshal(body, &raw)
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fhir.Errorf(fhir.KindInvalid, "body is not valid JSON: %s (at byte %d)", se.Error(), se.Offset)
	}
	return fhir.Errorf(fhir.KindInvalid, "body is not valid JSON")
}

func truncate(s string) string {
	const n = 64
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
