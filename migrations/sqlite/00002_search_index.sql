-- +goose Up
-- Search index, the same shape as the PostgreSQL schema (see there for the
-- design): typed rows per search parameter keyed by tenant and the owning
-- resource; composite components under param "C:0", "C:1"... with a group
-- number per tuple. Text compares with BINARY collation (byte order, like
-- PostgreSQL's "C"), so a prefix search is an index range. Dates are
-- microseconds since the Unix epoch; an open end is the smallest or largest
-- 64-bit integer. Numbers are REAL here (binary floating point, about 15
-- significant digits), where PostgreSQL keeps exact numeric; values beyond
-- that precision may compare differently at their edges. An open end is NULL.
CREATE TABLE idx_string (
    tenant TEXT    NOT NULL,
    type   TEXT    NOT NULL,
    id     TEXT    NOT NULL,
    param  TEXT    NOT NULL,
    grp    INTEGER NOT NULL DEFAULT 0,
    value  TEXT    NOT NULL,               -- as written, for :exact
    norm   TEXT    NOT NULL    -- fhir/index.Normalize(value)
);
CREATE INDEX idx_string_res ON idx_string (tenant, type, id, param);
CREATE INDEX idx_string_norm ON idx_string (tenant, type, param, norm, id);

CREATE TABLE idx_token (
    tenant      TEXT    NOT NULL,
    type        TEXT    NOT NULL,
    id          TEXT    NOT NULL,
    param       TEXT    NOT NULL,
    grp         INTEGER NOT NULL DEFAULT 0,
    system      TEXT    NOT NULL,          -- '' when none
    code        TEXT    NOT NULL,          -- '' for a TEXT-only row
    text_norm   TEXT    NOT NULL, -- normalised display/TEXT, for :TEXT
    type_system TEXT    NOT NULL,          -- Identifier.type coding, for :of-type
    type_code   TEXT    NOT NULL
);
CREATE INDEX idx_token_res ON idx_token (tenant, type, id, param);
CREATE INDEX idx_token_code ON idx_token (tenant, type, param, code, system, id);

CREATE TABLE idx_reference (
    tenant       TEXT    NOT NULL,
    type         TEXT    NOT NULL,
    id           TEXT    NOT NULL,
    param        TEXT    NOT NULL,
    grp          INTEGER NOT NULL DEFAULT 0,
    target_type  TEXT    NOT NULL,         -- '' when unknown
    target_id    TEXT    NOT NULL,         -- '' for a URL or identifier-only reference
    version      TEXT    NOT NULL,
    url          TEXT    NOT NULL,         -- absolute URL or canonical, '' for a local reference
    ident_system TEXT    NOT NULL,         -- Reference.identifier, for :identifier
    ident_value  TEXT    NOT NULL
);
CREATE INDEX idx_reference_res ON idx_reference (tenant, type, id, param);
-- Serves Observation?patient=X, _revinclude, _has and chains, which all
-- start from the target (the id is the selective part).
CREATE INDEX idx_reference_target ON idx_reference (tenant, target_id, target_type, param, type, id);
CREATE INDEX idx_reference_url ON idx_reference (tenant, url, param) WHERE url <> '';

CREATE TABLE idx_date (
    tenant TEXT    NOT NULL,
    type   TEXT    NOT NULL,
    id     TEXT    NOT NULL,
    param  TEXT    NOT NULL,
    grp    INTEGER NOT NULL DEFAULT 0,
    low    INTEGER  NOT NULL,               -- inclusive
    high   INTEGER  NOT NULL                -- exclusive
);
CREATE INDEX idx_date_res ON idx_date (tenant, type, id, param);
CREATE INDEX idx_date_low ON idx_date (tenant, type, param, low, high, id);

CREATE TABLE idx_number (
    tenant TEXT    NOT NULL,
    type   TEXT    NOT NULL,
    id     TEXT    NOT NULL,
    param  TEXT    NOT NULL,
    grp    INTEGER NOT NULL DEFAULT 0,
    value  REAL,                        -- NULL for a Range
    low    REAL,                        -- NULL: unbounded
    high   REAL
);
CREATE INDEX idx_number_res ON idx_number (tenant, type, id, param);
CREATE INDEX idx_number_low ON idx_number (tenant, type, param, low);

CREATE TABLE idx_quantity (
    tenant TEXT    NOT NULL,
    type   TEXT    NOT NULL,
    id     TEXT    NOT NULL,
    param  TEXT    NOT NULL,
    grp    INTEGER NOT NULL DEFAULT 0,
    value  REAL,
    low    REAL,
    high   REAL,
    system TEXT    NOT NULL,
    code   TEXT    NOT NULL,               -- coded unit
    unit   TEXT    NOT NULL                -- human-readable unit
);
CREATE INDEX idx_quantity_res ON idx_quantity (tenant, type, id, param);
CREATE INDEX idx_quantity_code ON idx_quantity (tenant, type, param, code, low);

CREATE TABLE idx_uri (
    tenant TEXT    NOT NULL,
    type   TEXT    NOT NULL,
    id     TEXT    NOT NULL,
    param  TEXT    NOT NULL,
    grp    INTEGER NOT NULL DEFAULT 0,
    value  TEXT    NOT NULL
);
CREATE INDEX idx_uri_res ON idx_uri (tenant, type, id, param);
CREATE INDEX idx_uri_value ON idx_uri (tenant, type, param, value, id);

-- The resource (type, id) belongs to the compartment comp_type/comp_id.
CREATE TABLE idx_compartment (
    tenant    TEXT NOT NULL,
    type      TEXT NOT NULL,
    id        TEXT NOT NULL,
    comp_type TEXT NOT NULL,
    comp_id   TEXT NOT NULL
);
CREATE INDEX idx_compartment_res ON idx_compartment (tenant, type, id);
CREATE INDEX idx_compartment_comp ON idx_compartment (tenant, comp_type, comp_id, type, id);

-- _lastUpdated searches and sorts.
CREATE INDEX resources_tenant_type_last_updated ON resources (tenant, type, last_updated);

-- +goose Down
DROP INDEX resources_tenant_type_last_updated;
DROP TABLE idx_compartment;
DROP TABLE idx_uri;
DROP TABLE idx_quantity;
DROP TABLE idx_number;
DROP TABLE idx_date;
DROP TABLE idx_reference;
DROP TABLE idx_token;
DROP TABLE idx_string;
