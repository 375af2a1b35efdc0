-- PostgreSQL: iam, the tables as migrations/sqlite/ leaves them by 0001_iam.sql.
CREATE TABLE accounts (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('operator', 'provider', 'consumer')),
    state TEXT NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'suspended')),
    currency TEXT NOT NULL DEFAULT 'USD',
    created_ms BIGINT NOT NULL
);

CREATE TABLE users (
    iam_id TEXT PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'active',
    created_ms BIGINT NOT NULL
);

CREATE TABLE account_users (
    account_id TEXT NOT NULL REFERENCES accounts(id),
    iam_id TEXT NOT NULL REFERENCES users(iam_id),
    created_ms BIGINT NOT NULL,
    PRIMARY KEY (account_id, iam_id)
);

CREATE TABLE service_ids (
    id TEXT PRIMARY KEY,
    iam_id TEXT NOT NULL UNIQUE,
    account_id TEXT NOT NULL REFERENCES accounts(id),
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    created_ms BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    iam_id TEXT NOT NULL,
    account_id TEXT NOT NULL REFERENCES accounts(id),
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    key_hash BYTEA NOT NULL UNIQUE,
    locked BIGINT NOT NULL DEFAULT 0,
    created_ms BIGINT NOT NULL,
    last_used_ms BIGINT
);

CREATE INDEX api_keys_by_owner ON api_keys(iam_id);

CREATE TABLE oauth_clients (
    client_id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts(id),
    name TEXT NOT NULL,
    secret_hash BYTEA,
    redirect_uris TEXT NOT NULL DEFAULT '[]',
    service_name TEXT,
    created_ms BIGINT NOT NULL
);

CREATE TABLE signing_keys (
    kid TEXT PRIMARY KEY,
    state TEXT NOT NULL CHECK (state IN ('active', 'next', 'retired')),
    private_key BYTEA NOT NULL,
    created_ms BIGINT NOT NULL,
    retired_ms BIGINT
);

CREATE TABLE policies (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts(id),
    subject TEXT NOT NULL,
    roles TEXT NOT NULL,
    service_name TEXT,
    resource_type TEXT,
    resource TEXT,
    created_ms BIGINT NOT NULL
);

CREATE INDEX policies_by_subject ON policies(subject);

CREATE TABLE auth_codes (
    code_hash BYTEA PRIMARY KEY,
    client_id TEXT NOT NULL,
    iam_id TEXT NOT NULL,
    account_id TEXT NOT NULL,
    redirect_uri TEXT NOT NULL,
    scope TEXT NOT NULL,
    code_challenge TEXT,
    expires_ms BIGINT NOT NULL,
    used BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE revoked_tokens (
    jti TEXT PRIMARY KEY,
    expires_ms BIGINT NOT NULL
);

CREATE TABLE consents (
    iam_id TEXT NOT NULL,
    client_id TEXT NOT NULL,
    scope TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    PRIMARY KEY (iam_id, client_id)
);

CREATE TABLE sessions (
    token_hash BYTEA PRIMARY KEY,
    iam_id TEXT NOT NULL,
    account_id TEXT NOT NULL,
    expires_ms BIGINT NOT NULL
);
