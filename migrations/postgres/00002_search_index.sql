-- +goose Up
-- Search index: typed rows extracted from each current resource at write
-- time (fhir/index), in the resource's transaction. Every table is keyed by
-- tenant first, then the owning resource (type, id). A row belongs to the
-- search parameter "param" (its code). Rows of a composite parameter C are
-- stored in the component's typed table under param "C:0", "C:1"... with
-- one group number (grp) per tuple, so that components are matched on the
-- same element; ordinary rows have grp 0.
--
-- Every table has a "res" index (tenant, type, id, param) for the per
-- resource EXISTS probes and for replacing a resource's rows, and a value
-- index that starts a search from the value. Normalised strings use the C
-- collation, so that a prefix search is a byte range that the index serves
-- (the same comparison as SQLite's BINARY). Dates are microseconds since the
-- Unix epoch like resources.last_updated; an open end is the smallest or
-- largest bigint. Numbers are numeric (exact decimals); an open end is NULL.
CREATE TABLE idx_string (
    tenant text    NOT NULL,
    type   text    NOT NULL,
    id     text    NOT NULL,
    param  text    NOT NULL,
    grp    integer NOT NULL DEFAULT 0,
    value  text    NOT NULL,               -- as written, for :exact
    norm   text    COLLATE "C" NOT NULL    -- fhir/index.Normalize(value)
);
CREATE INDEX idx_string_res ON idx_string (tenant, type, id, param);
CREATE INDEX idx_string_norm ON idx_string (tenant, type, param, norm, id);

CREATE TABLE idx_token (
    tenant      text    NOT NULL,
    type        text    NOT NULL,
    id          text    NOT NULL,
    param       text    NOT NULL,
    grp         integer NOT NULL DEFAULT 0,
    system      text    NOT NULL,          -- '' when none
    code        text    NOT NULL,          -- '' for a text-only row
    text_norm   text    COLLATE "C" NOT NULL, -- normalised display/text, for :text
    type_system text    NOT NULL,          -- Identifier.type coding, for :of-type
    type_code   text    NOT NULL
);
CREATE INDEX idx_token_res ON idx_token (tenant, type, id, param);
CREATE INDEX idx_token_code ON idx_token (tenant, type, param, code, system, id);

CREATE TABLE idx_reference (
    tenant       text    NOT NULL,
    type         text    NOT NULL,
    id           text    NOT NULL,
    param        text    NOT NULL,
    grp          integer NOT NULL DEFAULT 0,
    target_type  text    NOT NULL,         -- '' when unknown
    target_id    text    NOT NULL,         -- '' for a URL or identifier-only reference
    version      text    NOT NULL,
    url          text    NOT NULL,         -- absolute URL or canonical, '' for a local reference
    ident_system text    NOT NULL,         -- Reference.identifier, for :identifier
    ident_value  text    NOT NULL
);
CREATE INDEX idx_reference_res ON idx_reference (tenant, type, id, param);
-- Serves Observation?patient=X, _revinclude, _has and chains, which all
-- start from the target (the id is the selective part).
CREATE INDEX idx_reference_target ON idx_reference (tenant, target_id, target_type, param, type, id);
CREATE INDEX idx_reference_url ON idx_reference (tenant, url, param) WHERE url <> '';

CREATE TABLE idx_date (
    tenant text    NOT NULL,
    type   text    NOT NULL,
    id     text    NOT NULL,
    param  text    NOT NULL,
    grp    integer NOT NULL DEFAULT 0,
    low    bigint  NOT NULL,               -- inclusive
    high   bigint  NOT NULL                -- exclusive
);
CREATE INDEX idx_date_res ON idx_date (tenant, type, id, param);
CREATE INDEX idx_date_low ON idx_date (tenant, type, param, low, high, id);

CREATE TABLE idx_number (
    tenant text    NOT NULL,
    type   text    NOT NULL,
    id     text    NOT NULL,
    param  text    NOT NULL,
    grp    integer NOT NULL DEFAULT 0,
    value  numeric,                        -- NULL for a Range
    low    numeric,                        -- NULL: unbounded
    high   numeric
);
CREATE INDEX idx_number_res ON idx_number (tenant, type, id, param);
CREATE INDEX idx_number_low ON idx_number (tenant, type, param, low);

CREATE TABLE idx_quantity (
    tenant text    NOT NULL,
    type   text    NOT NULL,
    id     text    NOT NULL,
    param  text    NOT NULL,
    grp    integer NOT NULL DEFAULT 0,
    value  numeric,
    low    numeric,
    high   numeric,
    system text    NOT NULL,
    code   text    NOT NULL,               -- coded unit
    unit   text    NOT NULL                -- human-readable unit
);
CREATE INDEX idx_quantity_res ON idx_quantity (tenant, type, id, param);
CREATE INDEX idx_quantity_code ON idx_quantity (tenant, type, param, code, low);

CREATE TABLE idx_uri (
    tenant text    NOT NULL,
    type   text    NOT NULL,
    id     text    NOT NULL,
    param  text    NOT NULL,
    grp    integer NOT NULL DEFAULT 0,
    value  text    COLLATE "C" NOT NULL
);
CREATE INDEX idx_uri_res ON idx_uri (tenant, type, id, param);
CREATE INDEX idx_uri_value ON idx_uri (tenant, type, param, value, id);

-- The resource (type, id) belongs to the compartment comp_type/comp_id.
CREATE TABLE idx_compartment (
    tenant    text NOT NULL,
    type      text NOT NULL,
    id        text NOT NULL,
    comp_type text NOT NULL,
    comp_id   text NOT NULL
);
CREATE INDEX idx_compartment_res ON idx_compartment (tenant, type, id);
CREATE INDEX idx_compartment_comp ON idx_compartment (tenant, comp_type, comp_id, type, id);

-- The columns of a parameter's value depend on each other (a code implies
-- its system and parameter, an id its type): without these statistics the
-- planner multiplies their selectivities, underestimates a common code by
-- an order of magnitude and starts from the wrong side of a search.
CREATE STATISTICS idx_string_stx (dependencies, mcv) ON type, param, norm FROM idx_string;
CREATE STATISTICS idx_token_stx (dependencies, mcv) ON type, param, code, system FROM idx_token;
CREATE STATISTICS idx_reference_stx (dependencies) ON type, param, target_type, target_id FROM idx_reference;
CREATE STATISTICS idx_date_stx (dependencies, mcv) ON type, param FROM idx_date;

-- _lastUpdated searches and sorts.
CREATE INDEX resources_tenant_type_last_updated ON resources (tenant, type, last_updated);

-- +goose Down
DROP INDEX resources_tenant_type_last_updated;
DROP STATISTICS idx_string_stx, idx_token_stx, idx_reference_stx, idx_date_stx;
DROP TABLE idx_compartment;
DROP TABLE idx_uri;
DROP TABLE idx_quantity;
DROP TABLE idx_number;
DROP TABLE idx_date;
DROP TABLE idx_reference;
DROP TABLE idx_token;
DROP TABLE idx_string;
