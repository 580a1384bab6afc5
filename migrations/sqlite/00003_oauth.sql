-- +goose Up
-- The authorization server's tables (package oauth). Times are microseconds
-- since the Unix epoch (UTC), as in 00001. Secrets are stored as keyed
-- hashes; tokens by signature (an HMAC) or JWT id, never as issued.
CREATE TABLE oauth_clients (
    tenant        TEXT    NOT NULL,
    id            TEXT    NOT NULL,
    secret_hash   BLOB,
    public        BOOLEAN NOT NULL,
    jwks          TEXT    NOT NULL,
    jwks_url      TEXT    NOT NULL,
    redirect_uris TEXT    NOT NULL, -- space-separated
    scope         TEXT    NOT NULL,
    grant_types   TEXT    NOT NULL, -- space-separated
    created_at    INTEGER  NOT NULL,
    PRIMARY KEY (tenant, id)
);

CREATE TABLE oauth_users (
    tenant        TEXT   NOT NULL,
    username      TEXT   NOT NULL,
    password_hash TEXT   NOT NULL,
    fhir_user     TEXT   NOT NULL,
    scope         TEXT   NOT NULL,
    created_at    INTEGER NOT NULL,
    PRIMARY KEY (tenant, username)
);

CREATE TABLE oauth_keys (
    kid         TEXT   PRIMARY KEY,
    use         TEXT   NOT NULL,
    alg         TEXT   NOT NULL,
    private_key BLOB  NOT NULL,
    created_at  INTEGER NOT NULL,
    retired_at  INTEGER,
    not_after   INTEGER NOT NULL
);
-- One current key per use: servers starting at once cannot both add one.
CREATE UNIQUE INDEX oauth_keys_current ON oauth_keys (use) WHERE retired_at IS NULL;

CREATE TABLE oauth_tokens (
    kind             TEXT    NOT NULL,
    signature        TEXT    NOT NULL,
    tenant           TEXT    NOT NULL,
    request_id       TEXT    NOT NULL,
    client_id        TEXT    NOT NULL,
    subject          TEXT    NOT NULL,
    session_id       TEXT    NOT NULL,
    access_signature TEXT    NOT NULL,
    active           BOOLEAN NOT NULL,
    created_at       INTEGER  NOT NULL,
    expires_at       INTEGER  NOT NULL,
    data             BLOB   NOT NULL,
    PRIMARY KEY (kind, signature)
);
CREATE INDEX oauth_tokens_request ON oauth_tokens (request_id);
CREATE INDEX oauth_tokens_expires ON oauth_tokens (expires_at);

CREATE TABLE oauth_revocations (
    jti        TEXT   PRIMARY KEY,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER NOT NULL
);
CREATE INDEX oauth_revocations_revoked ON oauth_revocations (revoked_at);

CREATE TABLE oauth_assertions (
    id         TEXT   PRIMARY KEY,
    expires_at INTEGER NOT NULL
);

CREATE TABLE oauth_launches (
    id         TEXT   PRIMARY KEY,
    tenant     TEXT   NOT NULL,
    patient    TEXT   NOT NULL,
    encounter  TEXT   NOT NULL,
    username   TEXT   NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);

CREATE TABLE oauth_sessions (
    id         TEXT   PRIMARY KEY,
    tenant     TEXT   NOT NULL,
    kind       TEXT   NOT NULL,
    username   TEXT   NOT NULL,
    data       BLOB  NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX oauth_sessions_expires ON oauth_sessions (expires_at);

CREATE TABLE oauth_login_failures (
    key TEXT   NOT NULL,
    at  INTEGER NOT NULL
);
CREATE INDEX oauth_login_failures_key ON oauth_login_failures (key, at);

-- +goose Down
DROP TABLE oauth_login_failures;
DROP TABLE oauth_sessions;
DROP TABLE oauth_launches;
DROP TABLE oauth_assertions;
DROP TABLE oauth_revocations;
DROP TABLE oauth_tokens;
DROP TABLE oauth_keys;
DROP TABLE oauth_users;
DROP TABLE oauth_clients;
