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
	// Filter, when not nil, confines the history to the resources whose
	// CURRENT version it admits (the compartment and search indexes hold
	// the current version only): every version of such a resource is
	// listed and counted, nothing of any other resource, and nothing of a
	// resource whose current version is a deletion. A store applies it in
	// SQL, like a search's filter. Nil means no restriction.
	Filter *Filter
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
	// FilteredSearcher runs searches as a caller sees them (access rules
	// compiled into the SQL).
	FilteredSearcher
	Transactor
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

// Transactor runs several interactions as one database transaction.
type Transactor interface {
	// Transact runs fn in one write transaction of tenant and commits when
	// fn returns nil; any error rolls everything back and is returned as is
	// (errors of the database become KindInternal). When the transaction
	// clashed with a concurrent one (a deadlock, a serialisation failure,
	// two creates of the same new id) fn runs again in a fresh transaction,
	// a few times at most, so fn must compute everything it keeps from what
	// tx gives it on each run.
	Transact(ctx context.Context, tenant string, fn func(tx Tx) error) error
}

// Tx is the inside of Transact: the interactions of store.Store, seeing the
// transaction's own writes, plus what conditional interactions and
// referential-integrity checks need. Write.Tenant and Delete.Tenant are
// ignored: the transaction's tenant applies. A Tx must not be used after
// fn returns, nor from several goroutines.
type Tx interface {
	// Create stores a new resource. With w.ID empty the store assigns an
	// id; with w.ID set (an id the caller generated, so that references
	// to the new resource can be written before it exists) the resource
	// gets that id, and KindConflict is the answer when a resource with
	// that id exists or ever existed. History records a create either way.
	Create(ctx context.Context, w Write) (*fhir.Resource, error)
	// CreateAll is Create for several new resources at once, each with
	// its w.ID set (KindConflict when any exists or existed), written with
	// as few statements as the database allows; the results are in the
	// order of ws.
	CreateAll(ctx context.Context, ws []Write) ([]*fhir.Resource, error)
	// Update is Store.Update.
	Update(ctx context.Context, w Write) (res *fhir.Resource, created bool, err error)
	// Delete is Store.Delete.
	Delete(ctx context.Context, d Delete) (*fhir.Resource, error)
	// Read is Store.Read, and it locks the resource until the transaction
	// ends, so that a read, change and update inside one Tx (a patch) can
	// never lose a concurrent update.
	Read(ctx context.Context, typ, id string) (*fhir.Resource, error)
	// VRead is Store.VRead.
	VRead(ctx context.Context, typ, id string, version int64) (*fhir.Resource, error)
	// Search is Searcher.Search.
	Search(ctx context.Context, q *search.Query) (*SearchPage, error)
	// Lock takes an exclusive lock on key, held until the transaction
	// ends: transactions that lock the same key run one after the other
	// from that point. Conditional interactions lock their criteria (see
	// Match), so that two of them with the same criteria cannot both see
	// no match and both create.
	Lock(ctx context.Context, key string) error
	// Missing returns those of refs that are not current resources (never
	// stored, or deleted), in the order given. The present ones are locked
	// against deletion until the transaction ends, so that a reference
	// found valid stays valid when the transaction commits.
	Missing(ctx context.Context, refs []Ref) ([]Ref, error)
	// ReferencedBy returns up to limit current resources other than typ/id
	// itself that refer to typ/id through a local reference that a search
	// parameter indexes (Observation.subject, not an arbitrary extension),
	// sorted.
	ReferencedBy(ctx context.Context, typ, id string, limit int) ([]Ref, error)
}

// Ref names a resource: Type/ID.
type Ref struct {
	Type string
	ID   string
}

func (r Ref) String() string { return r.Type + "/" + r.ID }
