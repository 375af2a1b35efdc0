-- PostgreSQL: catalog, the tables as migrations/sqlite/ leaves them by 0003_catalog.sql.
CREATE TABLE offerings (
    id TEXT PRIMARY KEY,                -- the OSB service id
    account_id TEXT NOT NULL REFERENCES accounts(id),
    name TEXT NOT NULL UNIQUE,          -- the programmatic service name
    doc TEXT NOT NULL,                  -- JSON: the metadata the provider edits
    visibility TEXT NOT NULL DEFAULT 'draft'
        CHECK (visibility IN ('draft', 'limited', 'public')),
    publication TEXT NOT NULL DEFAULT 'none'
        CHECK (publication IN ('none', 'requested', 'changes_requested', 'approved')),
    service_iam_id TEXT,                -- IAM integration: the offering's service ID
    client_id TEXT,                     -- ... and its dashboard OAuth client
    revision BIGINT NOT NULL DEFAULT 1,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL
);

CREATE INDEX offerings_by_account ON offerings(account_id);

CREATE TABLE plans (
    id TEXT PRIMARY KEY,                -- the OSB plan id
    offering_id TEXT NOT NULL REFERENCES offerings(id),
    name TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('lite', 'subscription', 'metered')),
    doc TEXT NOT NULL,                  -- JSON: description, flags, schemas, metrics, ...
    state TEXT NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'deprecated')),
    published BIGINT NOT NULL DEFAULT 0, -- live for consumers (approved by the operator)
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL,
    UNIQUE (offering_id, name)
);

CREATE TABLE plan_prices (
    plan_id TEXT NOT NULL REFERENCES plans(id),
    effective_month TEXT NOT NULL,
    pricing TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    PRIMARY KEY (plan_id, effective_month)
);

CREATE TABLE brokers (
    id TEXT PRIMARY KEY,
    offering_id TEXT NOT NULL REFERENCES offerings(id),
    region TEXT NOT NULL,
    url TEXT NOT NULL,
    auth TEXT NOT NULL CHECK (auth IN ('basic', 'bearer')),
    username TEXT,
    secret BYTEA,                        -- the Basic password, encrypted: the platform sends it
    api_version TEXT NOT NULL DEFAULT '2.17',
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL,
    UNIQUE (offering_id, region)
);

CREATE TABLE deployments (
    plan_id TEXT NOT NULL REFERENCES plans(id),
    region TEXT NOT NULL,
    broker_id TEXT NOT NULL REFERENCES brokers(id),
    created_ms BIGINT NOT NULL,
    PRIMARY KEY (plan_id, region)
);

CREATE TABLE scorecards (
    rowid BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE, -- SQLite's insertion order
    id TEXT PRIMARY KEY,
    offering_id TEXT NOT NULL REFERENCES offerings(id),
    broker_id TEXT NOT NULL REFERENCES brokers(id),
    state TEXT NOT NULL CHECK (state IN ('running', 'passed', 'failed')),
    checks TEXT NOT NULL DEFAULT '[]',  -- JSON: [{name, passed, expected, actual}]
    started_ms BIGINT NOT NULL,
    finished_ms BIGINT
);

CREATE INDEX scorecards_by_offering ON scorecards(offering_id, started_ms);

CREATE TABLE offering_allowlist (
    offering_id TEXT NOT NULL REFERENCES offerings(id),
    account_id TEXT NOT NULL REFERENCES accounts(id),
    created_ms BIGINT NOT NULL,
    PRIMARY KEY (offering_id, account_id)
);

CREATE TABLE offering_reviews (
    offering_id TEXT NOT NULL REFERENCES offerings(id),
    seq BIGINT NOT NULL,
    iam_id TEXT NOT NULL,
    account_id TEXT NOT NULL,
    action TEXT NOT NULL
        CHECK (action IN ('request', 'approve', 'request_changes', 'comment')),
    comment TEXT NOT NULL DEFAULT '',
    created_ms BIGINT NOT NULL,
    PRIMARY KEY (offering_id, seq)
);

CREATE TABLE offering_evidence (
    offering_id TEXT NOT NULL REFERENCES offerings(id),
    kind TEXT NOT NULL CHECK (kind IN ('instance_lifecycle', 'usage')),
    detail TEXT NOT NULL DEFAULT '{}',
    created_ms BIGINT NOT NULL
);

CREATE INDEX offering_evidence_by_offering ON offering_evidence(offering_id, kind);
