-- IAM: accounts, users, service IDs, API keys, OAuth clients, signing keys, tokens, policies.
-- Secrets are never stored: API keys, client secrets, codes and refresh tokens as keyed
-- hashes (HMAC-SHA256 with the data directory's secret), passwords as argon2id strings,
-- private signing keys encrypted with the data directory's secret.
CREATE TABLE accounts (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('operator', 'provider', 'consumer')),
    state TEXT NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'suspended')),
    currency TEXT NOT NULL DEFAULT 'USD',
    created_ms INTEGER NOT NULL
);
CREATE TABLE users (
    iam_id TEXT PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'active',
    created_ms INTEGER NOT NULL
);
CREATE TABLE account_users (
    account_id TEXT NOT NULL REFERENCES accounts(id),
    iam_id TEXT NOT NULL REFERENCES users(iam_id),
    created_ms INTEGER NOT NULL,
    PRIMARY KEY (account_id, iam_id)
);
CREATE TABLE service_ids (
    id TEXT PRIMARY KEY,
    iam_id TEXT NOT NULL UNIQUE,
    account_id TEXT NOT NULL REFERENCES accounts(id),
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    created_ms INTEGER NOT NULL
);
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    iam_id TEXT NOT NULL,
    account_id TEXT NOT NULL REFERENCES accounts(id),
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    key_hash BLOB NOT NULL UNIQUE,
    locked INTEGER NOT NULL DEFAULT 0,
    created_ms INTEGER NOT NULL,
    last_used_ms INTEGER
);
CREATE INDEX api_keys_by_owner ON api_keys(iam_id);
CREATE TABLE oauth_clients (
    client_id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts(id),
    name TEXT NOT NULL,
    secret_hash BLOB,
    redirect_uris TEXT NOT NULL DEFAULT '[]',
    service_name TEXT,
    created_ms INTEGER NOT NULL
);
CREATE TABLE signing_keys (
    kid TEXT PRIMARY KEY,
    state TEXT NOT NULL CHECK (state IN ('active', 'next', 'retired')),
    private_key BLOB NOT NULL,
    created_ms INTEGER NOT NULL,
    retired_ms INTEGER
);
CREATE TABLE policies (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL REFERENCES accounts(id),
    subject TEXT NOT NULL,
    roles TEXT NOT NULL,
    service_name TEXT,
    resource_type TEXT,
    resource TEXT,
    created_ms INTEGER NOT NULL
);
CREATE INDEX policies_by_subject ON policies(subject);
CREATE TABLE auth_codes (
    code_hash BLOB PRIMARY KEY,
    client_id TEXT NOT NULL,
    iam_id TEXT NOT NULL,
    account_id TEXT NOT NULL,
    redirect_uri TEXT NOT NULL,
    scope TEXT NOT NULL,
    code_challenge TEXT,
    expires_ms INTEGER NOT NULL,
    used INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE refresh_tokens (
    token_hash BLOB PRIMARY KEY,
    family TEXT NOT NULL,
    iam_id TEXT NOT NULL,
    account_id TEXT NOT NULL,
    client_id TEXT NOT NULL,
    scope TEXT NOT NULL,
    expires_ms INTEGER NOT NULL,
    used INTEGER NOT NULL DEFAULT 0,
    revoked INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX refresh_tokens_by_family ON refresh_tokens(family);
CREATE TABLE revoked_tokens (
    jti TEXT PRIMARY KEY,
    expires_ms INTEGER NOT NULL
);
CREATE TABLE consents (
    iam_id TEXT NOT NULL,
    client_id TEXT NOT NULL,
    scope TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    PRIMARY KEY (iam_id, client_id)
);
CREATE TABLE sessions (
    token_hash BLOB PRIMARY KEY,
    iam_id TEXT NOT NULL,
    account_id TEXT NOT NULL,
    expires_ms INTEGER NOT NULL
);
