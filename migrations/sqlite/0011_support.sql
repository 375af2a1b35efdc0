-- Support: cases that consumers open, routed to the provider of the instance's offering (or to
-- the operator for the platform itself), their updates, and the deliveries of both to the
-- provider's webhook with every attempt.

-- An offering's support webhook: where its cases go. The shared secret signs the deliveries,
-- so the platform must be able to use it: it is sealed with a key derived from the data
-- directory's secret, never stored in clear.
CREATE TABLE support_webhooks (
    offering_id TEXT PRIMARY KEY REFERENCES offerings(id),
    url TEXT NOT NULL,
    secret_sealed BLOB NOT NULL,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL
);

CREATE TABLE support_cases (
    id TEXT PRIMARY KEY,
    number INTEGER NOT NULL UNIQUE,
    account_id TEXT NOT NULL REFERENCES accounts(id),  -- the consumer's
    opened_by TEXT NOT NULL,                           -- an iam_id
    instance_id TEXT REFERENCES resource_instances(guid), -- NULL: about the platform
    offering_id TEXT REFERENCES offerings(id),
    provider_account_id TEXT,                          -- NULL: the operator's queue
    severity INTEGER NOT NULL CHECK (severity BETWEEN 1 AND 4),
    subject TEXT NOT NULL,
    description TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('new', 'in_progress', 'waiting_on_client',
                                           'resolved', 'closed')),
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    first_response_due_ms INTEGER,                     -- NULL: no target for the severity
    first_response_ms INTEGER                          -- the support side's first update
);
CREATE INDEX support_cases_by_account ON support_cases(account_id, number);
CREATE INDEX support_cases_by_provider ON support_cases(provider_account_id, number);
CREATE INDEX support_cases_awaiting ON support_cases(first_response_due_ms)
    WHERE first_response_ms IS NULL;

CREATE TABLE support_updates (
    case_id TEXT NOT NULL REFERENCES support_cases(id),
    seq INTEGER NOT NULL,               -- 1, 2, 3, ... per case; 1 is the case being opened
    author TEXT NOT NULL,               -- an iam_id
    author_account_id TEXT NOT NULL,
    side TEXT NOT NULL CHECK (side IN ('consumer', 'provider', 'operator')),
    comment TEXT,
    status_from TEXT,
    status_to TEXT,
    created_ms INTEGER NOT NULL,
    PRIMARY KEY (case_id, seq)
) WITHOUT ROWID;

-- One delivery per case event for the provider's webhook, retried until acknowledged.
CREATE TABLE support_deliveries (
    id TEXT PRIMARY KEY,
    case_id TEXT NOT NULL REFERENCES support_cases(id),
    seq INTEGER NOT NULL,               -- the update it carries
    event TEXT NOT NULL,                -- case.created, case.updated
    state TEXT NOT NULL CHECK (state IN ('pending', 'delivered')),
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    delivered_ms INTEGER
);
CREATE INDEX support_deliveries_due ON support_deliveries(next_attempt_ms)
    WHERE state = 'pending';
CREATE INDEX support_deliveries_by_case ON support_deliveries(case_id, seq);

CREATE TABLE support_delivery_attempts (
    delivery_id TEXT NOT NULL REFERENCES support_deliveries(id),
    attempt INTEGER NOT NULL,
    at_ms INTEGER NOT NULL,
    url TEXT NOT NULL,
    status INTEGER,                     -- the webhook's HTTP status; NULL with error
    error TEXT,                         -- timeout, connect, ..., or what the answer lacked
    elapsed_ms INTEGER NOT NULL,
    PRIMARY KEY (delivery_id, attempt)
) WITHOUT ROWID;
