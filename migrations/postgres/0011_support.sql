-- PostgreSQL: support, the tables as migrations/sqlite/ leaves them by 0011_support.sql.
CREATE TABLE support_webhooks (
    offering_id TEXT PRIMARY KEY REFERENCES offerings(id),
    url TEXT NOT NULL,
    secret_sealed BYTEA NOT NULL,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL
);

CREATE TABLE support_cases (
    id TEXT PRIMARY KEY,
    number BIGINT NOT NULL UNIQUE,
    account_id TEXT NOT NULL REFERENCES accounts(id),  -- the consumer's
    opened_by TEXT NOT NULL,                           -- an iam_id
    instance_id TEXT REFERENCES resource_instances(guid), -- NULL: about the platform
    offering_id TEXT REFERENCES offerings(id),
    provider_account_id TEXT,                          -- NULL: the operator's queue
    severity BIGINT NOT NULL CHECK (severity BETWEEN 1 AND 4),
    subject TEXT NOT NULL,
    description TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('new', 'in_progress', 'waiting_on_client',
                                           'resolved', 'closed')),
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL,
    first_response_due_ms BIGINT,                     -- NULL: no target for the severity
    first_response_ms BIGINT                          -- the support side's first update
);

CREATE INDEX support_cases_by_account ON support_cases(account_id, number);

CREATE INDEX support_cases_by_provider ON support_cases(provider_account_id, number);

CREATE INDEX support_cases_awaiting ON support_cases(first_response_due_ms)
    WHERE first_response_ms IS NULL;

CREATE TABLE support_updates (
    case_id TEXT NOT NULL REFERENCES support_cases(id),
    seq BIGINT NOT NULL,               -- 1, 2, 3, ... per case; 1 is the case being opened
    author TEXT NOT NULL,               -- an iam_id
    author_account_id TEXT NOT NULL,
    side TEXT NOT NULL CHECK (side IN ('consumer', 'provider', 'operator')),
    comment TEXT,
    status_from TEXT,
    status_to TEXT,
    created_ms BIGINT NOT NULL,
    PRIMARY KEY (case_id, seq)
);

CREATE TABLE support_deliveries (
    id TEXT PRIMARY KEY,
    case_id TEXT NOT NULL REFERENCES support_cases(id),
    seq BIGINT NOT NULL,               -- the update it carries
    event TEXT NOT NULL,                -- case.created, case.updated
    state TEXT NOT NULL CHECK (state IN ('pending', 'delivered')),
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_ms BIGINT NOT NULL,
    created_ms BIGINT NOT NULL,
    delivered_ms BIGINT
);

CREATE INDEX support_deliveries_due ON support_deliveries(next_attempt_ms)
    WHERE state = 'pending';

CREATE INDEX support_deliveries_by_case ON support_deliveries(case_id, seq);

CREATE TABLE support_delivery_attempts (
    delivery_id TEXT NOT NULL REFERENCES support_deliveries(id),
    attempt BIGINT NOT NULL,
    at_ms BIGINT NOT NULL,
    url TEXT NOT NULL,
    status BIGINT,                     -- the webhook's HTTP status; NULL with error
    error TEXT,                         -- timeout, connect, ..., or what the answer lacked
    elapsed_ms BIGINT NOT NULL,
    PRIMARY KEY (delivery_id, attempt)
);
