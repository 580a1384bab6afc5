-- +goose Up
-- Same shape as the PostgreSQL schema; times are microseconds since the
-- Unix epoch (UTC) and bodies are JSON text.
CREATE TABLE resources (
    tenant       TEXT    NOT NULL,
    type         TEXT    NOT NULL,
    id           TEXT    NOT NULL,
    version      INTEGER NOT NULL,
    last_updated INTEGER NOT NULL,
    deleted      BOOLEAN NOT NULL,
    content_hash BLOB,
    body         BLOB,
    PRIMARY KEY (tenant, type, id)
) WITHOUT ROWID;

CREATE TABLE resource_history (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant       TEXT    NOT NULL,
    type         TEXT    NOT NULL,
    id           TEXT    NOT NULL,
    version      INTEGER NOT NULL,
    last_updated INTEGER NOT NULL,
    op           TEXT    NOT NULL,
    body         BLOB
);
CREATE UNIQUE INDEX resource_history_key ON resource_history (tenant, type, id, version);
CREATE INDEX resource_history_tenant_seq ON resource_history (tenant, seq);
CREATE INDEX resource_history_tenant_type_seq ON resource_history (tenant, type, seq);

-- +goose Down
DROP TABLE resource_history;
DROP TABLE resources;
