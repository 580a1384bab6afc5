-- +goose Up
-- Every table is keyed by tenant first: tenants come with row-level security.
-- Times are microseconds since the Unix epoch (UTC) on both backends, so
-- that the shared SQL compares them the same way.
CREATE TABLE resources (
    tenant       text    NOT NULL,
    type         text    NOT NULL,
    id           text    NOT NULL,
    version      bigint  NOT NULL,
    last_updated bigint  NOT NULL,
    deleted      boolean NOT NULL,
    content_hash bytea,
    body         jsonb,
    PRIMARY KEY (tenant, type, id)
);

CREATE TABLE resource_history (
    seq          bigint GENERATED ALWAYS AS IDENTITY,
    tenant       text   NOT NULL,
    type         text   NOT NULL,
    id           text   NOT NULL,
    version      bigint NOT NULL,
    last_updated bigint NOT NULL,
    op           text   NOT NULL,
    body         jsonb,
    PRIMARY KEY (tenant, type, id, version)
);
CREATE UNIQUE INDEX resource_history_tenant_seq ON resource_history (tenant, seq);
CREATE INDEX resource_history_tenant_type_seq ON resource_history (tenant, type, seq);

-- +goose Down
DROP TABLE resource_history;
DROP TABLE resources;
