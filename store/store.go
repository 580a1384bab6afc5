// Package store declares what the server needs from persistence: versioned
// resources, history and (later) search, each scoped to a tenant. Backends
// live in store/postgres and store/sqlite and share their SQL through
// store/sqlstore; store/storetest is the contract suite they all pass.
package store

import (
	"context"
	"strconv"
	"time"

	"github.com/fhirserver/fhirserver/fhir"
	"github.com/fhirserver/fhirserver/fhir/search"
)

// DefaultTenant is the tenant served at B/fhir.
const DefaultTenant = ""

// Write asks the store to create or replace a resource. Body is a validated,
// compact resource JSON; the store stamps id, meta.versionId and
// meta.lastUpdated into it.
type Write struct {
	Tenant string
	Type   string
	ID     string // empty on create: the store assigns one
	Body   []byte
	// IfMatch, when non-zero, is the version the caller expects to replace;
	// any other current version fails with KindPreconditionFailed.
	IfMatch int64
}

// Delete asks the store to delete a resource (a new, deleted version).
type Delete struct {
	Tenant  string
	Type    string
	ID      string
	IfMatch int64
}

// Op is the interaction that produced a version: create is a POST (or a
// bulk import of a new resource), update a PUT (also when it created the
// resource, or re-created a deleted one), delete a DELETE.
type Op string

const (
	OpCreate Op = "create"
	OpUpdate Op = "update"
	OpDelete Op = "delete"
)

// Version is one entry of a resource's history.
type Version struct {
	fhir.Resource
	Op Op
}

// HistoryQuery selects history at system (Type empty), type (ID empty) or
// instance level, newest first.
type HistoryQuery struct {
	Tenant string
	Type   string
	ID     string
	Since  time.Time // only versions with lastUpdated >= Since when non-zero
	At     time.Time // only versions current at At when non-zero (_at)
	Count  int       // page size; <= 0 or too large means the store's maximum
	// Cursor continues a previous page: only versions older than it. It is
	// an opaque, monotonic sequence number, so pages stay stable while
	// others write.
	Cursor int64
}

// HistoryPage is one page of history.
type HistoryPage struct {
	Versions []Version
	Total    int64 // versions matching the query (all pages)
	Next     int64 // cursor of the next page; 0 when this is the last
}

// ImportResult counts what a bulk load did.
type ImportResult struct {
	Created   int
	Updated   int
	Unchanged int
}

// Store is the persistence contract. Every method is scoped to a tenant and
// returns *fhir.Error for anything a client caused (not-found, gone,
// precondition-failed, conflict); other errors are internal.
type Store interface {
	// Create stores a new resource with a server-assigned id (w.ID is ignored).
	Create(ctx context.Context, w Write) (*fhir.Resource, error)
	// Update replaces w.Type/w.ID, creating it when absent (update-as-create).
	// created reports which happened. An update whose content equals the
	// current version stores nothing and returns the current version.
	Update(ctx context.Context, w Write) (res *fhir.Resource, created bool, err error)
	// Delete records a deleted version. Deleting a missing or already deleted
	// resource succeeds and returns nil.
	Delete(ctx context.Context, d Delete) (*fhir.Resource, error)
	// Read returns the current version: KindNotFound if it never existed,
	// KindGone if its current version is a deletion.
	Read(ctx context.Context, tenant, typ, id string) (*fhir.Resource, error)
	// VRead returns one version: KindNotFound if there is no such version,
	// KindGone if that version is a deletion.
	VRead(ctx context.Context, tenant, typ, id string, version int64) (*fhir.Resource, error)
	// History lists versions newest first.
	History(ctx context.Context, q HistoryQuery) (*HistoryPage, error)
	// Import upserts many resources with their given ids in one transaction,
	// skipping those whose content is unchanged.
	Import(ctx context.Context, tenant string, ws []Write) (ImportResult, error)
	// Ping reports whether the database answers.
	Ping(ctx context.Context) error
	Close() error
	Searcher
}

// GoneError carries the deleted version behind a KindGone error, so that a
// 410 response can still name the version and time of the deletion.
type GoneError struct{ Resource fhir.Resource }

func (e *GoneError) Error() string {
	return "deleted at version " + strconv.FormatInt(e.Resource.Version, 10)
}

// SearchPage is one page of search results.
type SearchPage struct {
	// Matches are the resources that match, in the query's sort order.
	Matches []fhir.Resource
	// Included are the resources added by _include and _revinclude (each
	// once, none that is also a match).
	Included []fhir.Resource
	// Total counts all matches across pages; -1 when not computed (as
	// _total and the store's cost rules decide).
	Total int64
	// Next is the cursor of the next page; "" on the last page.
	Next string
}

// Searcher runs searches. A store that implements it serves FHIR search.
type Searcher interface {
	Search(ctx context.Context, tenant string, q *search.Query) (*SearchPage, error)
}
