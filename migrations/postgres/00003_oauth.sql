-- +goose Up
-- The authorization server's tables (package oauth). Times are microseconds
-- since the Unix epoch (UTC), as in 00001. Secrets are stored as keyed
-- hashes; tokens by signature (an HMAC) or JWT id, never as issued.
CREATE TABLE oauth_clients (
    tenant        text    NOT NULL,
    id            text    NOT NULL,
    secret_hash   bytea,
    public        boolean NOT NULL,
    jwks          text    NOT NULL,
    jwks_url      text    NOT NULL,
    redirect_uris text    NOT NULL, -- space-separated
    scope         text    NOT NULL,
    grant_types   text    NOT NULL, -- space-separated
    created_at    bigint  NOT NULL,
    PRIMARY KEY (tenant, id)
);

CREATE TABLE oauth_users (
    tenant        text   NOT NULL,
    username      text   NOT NULL,
    password_hash text   NOT NULL,
    fhir_user     text   NOT NULL,
    scope         text   NOT NULL,
    created_at    bigint NOT NULL,
    PRIMARY KEY (tenant, username)
);

CREATE TABLE oauth_keys (
    kid         text   PRIMARY KEY,
    use         text   NOT NULL,
    alg         text   NOT NULL,
    private_key bytea  NOT NULL,
    created_at  bigint NOT NULL,
    retired_at  bigint,
    not_after   bigint NOT NULL
);
-- One current key per use: servers starting at once cannot both add one.
CREATE UNIQUE INDEX oauth_keys_current ON oauth_keys (use) WHERE retired_at IS NULL;

CREATE TABLE oauth_tokens (
    kind             text    NOT NULL,
    signature        text    NOT NULL,
    tenant           text    NOT NULL,
    request_id       text    NOT NULL,
    client_id        text    NOT NULL,
    subject          text    NOT NULL,
    session_id       text    NOT NULL,
    access_signature text    NOT NULL,
    active           boolean NOT NULL,
    created_at       bigint  NOT NULL,
    expires_at       bigint  NOT NULL,
    data             bytea   NOT NULL,
    PRIMARY KEY (kind, signature)
);
CREATE INDEX oauth_tokens_request ON oauth_tokens (request_id);
CREATE INDEX oauth_tokens_expires ON oauth_tokens (expires_at);

CREATE TABLE oauth_revocations (
    jti        text   PRIMARY KEY,
    expires_at bigint NOT NULL,
    revoked_at bigint NOT NULL
);
CREATE INDEX oauth_revocations_revoked ON oauth_revocations (revoked_at);

CREATE TABLE oauth_assertions (
    id         text   PRIMARY KEY,
    expires_at bigint NOT NULL
);

CREATE TABLE oauth_launches (
    id         text   PRIMARY KEY,
    tenant     text   NOT NULL,
    patient    text   NOT NULL,
    encounter  text   NOT NULL,
    username   text   NOT NULL,
    created_at bigint NOT NULL,
    expires_at bigint NOT NULL
);

CREATE TABLE oauth_sessions (
    id         text   PRIMARY KEY,
    tenant     text   NOT NULL,
    kind       text   NOT NULL,
    username   text   NOT NULL,
    data       bytea  NOT NULL,
    created_at bigint NOT NULL,
    expires_at bigint NOT NULL
);
CREATE INDEX oauth_sessions_expires ON oauth_sessions (expires_at);

CREATE TABLE oauth_login_failures (
    key text   NOT NULL,
    at  bigint NOT NULL
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
