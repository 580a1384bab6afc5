// Package fhir is the domain: resource envelopes, the FHIR error type, and
// (generated) search-parameter and compartment definitions. It imports only
// the standard library.
package fhir

import (
	"errors"
	"fmt"
)

// Kind classifies an Error; the server maps each kind to one HTTP status.
type Kind string

const (
	KindInvalid              Kind = "invalid"
	KindNotFound             Kind = "not-found"
	KindGone                 Kind = "gone"
	KindConflict             Kind = "conflict"
	KindPreconditionFailed   Kind = "precondition-failed"
	KindForbidden            Kind = "forbidden"
	KindUnauthorized         Kind = "unauthorized"
	KindTooCostly            Kind = "too-costly"
	KindNotSupported         Kind = "not-supported"
	KindTooLarge             Kind = "too-large"
	KindUnsupportedMediaType Kind = "unsupported-media-type"
	KindNotAcceptable        Kind = "not-acceptable"
	KindMethodNotAllowed     Kind = "method-not-allowed"
	KindInternal             Kind = "internal"
)

// Error is the one error type that crosses package boundaries. Message is
// safe to show to clients; Err (the cause) is only ever logged.
type Error struct {
	Kind       Kind
	Message    string
	Expression []string // FHIRPath locations the message is about, if known
	Err        error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Kind, e.Message, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Kind, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf builds an Error whose message is shown to clients.
func Errorf(kind Kind, format string, args ...any) *Error {
	return &Error{Kind: kind, Message: fmt.Sprintf(format, args...)}
}

// Internal wraps a cause that must not be shown to clients.
func Internal(doing string, err error) *Error {
	return &Error{Kind: KindInternal, Message: "internal error while " + doing, Err: err}
}

// KindOf returns the kind of err, or KindInternal for a foreign error.
func KindOf(err error) Kind {
	var fe *Error
	if errors.As(err, &fe) {
		return fe.Kind
	}
	return KindInternal
}

// MessageOf returns the client-safe message of err; foreign errors get a
// generic message so that driver text never reaches a client.
func MessageOf(err error) string {
	var fe *Error
	if errors.As(err, &fe) && fe.Kind != KindInternal {
		return fe.Message
	}
	return "internal error"
}
