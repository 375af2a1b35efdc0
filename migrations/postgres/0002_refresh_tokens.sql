-- PostgreSQL: refresh tokens, the tables as migrations/sqlite/ leaves them by 0002_refresh_tokens.sql.
CREATE TABLE refresh_used (
    jti TEXT PRIMARY KEY,
    family TEXT NOT NULL,
    expires_ms BIGINT NOT NULL
);

CREATE TABLE refresh_revoked (
    family TEXT PRIMARY KEY,
    expires_ms BIGINT NOT NULL
);
