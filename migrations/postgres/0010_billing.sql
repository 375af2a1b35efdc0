-- PostgreSQL: billing, the tables as migrations/sqlite/ leaves them by 0010_billing.sql.
CREATE TABLE invoices (
    id TEXT PRIMARY KEY,
    number BIGINT NOT NULL UNIQUE,       -- gapless, in the order invoices are issued
    account_id TEXT NOT NULL REFERENCES accounts(id),
    month TEXT NOT NULL,
    currency TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('finalized', 'void')),
    kind TEXT NOT NULL DEFAULT 'invoice' CHECK (kind IN ('invoice', 'credit_note')),
    total TEXT NOT NULL,
    refers_to TEXT REFERENCES invoices(id), -- a credit note's voided invoice, a reissue's
    issued_ms BIGINT NOT NULL,
    voided_ms BIGINT,
    void_reason TEXT
);

CREATE INDEX invoices_by_account ON invoices(account_id, month);

CREATE INDEX invoices_by_month ON invoices(month);

CREATE TABLE invoice_lines (
    invoice_id TEXT NOT NULL REFERENCES invoices(id),
    line BIGINT NOT NULL,
    instance_id TEXT NOT NULL,
    offering_id TEXT NOT NULL,
    provider_account_id TEXT NOT NULL,
    plan_id TEXT NOT NULL,
    metric TEXT NOT NULL,
    unit TEXT NOT NULL,
    metering_model TEXT NOT NULL,
    pricing_model TEXT,                   -- NULL for a free plan
    billable_quantity TEXT NOT NULL,
    charge_unit_quantity TEXT NOT NULL,
    rated_quantity TEXT NOT NULL,
    exact_amount TEXT NOT NULL,
    amount TEXT NOT NULL,
    provider_share TEXT NOT NULL,
    platform_share TEXT NOT NULL,
    revenue_share TEXT NOT NULL,
    PRIMARY KEY (invoice_id, line)
);

CREATE TABLE statements (
    id TEXT PRIMARY KEY,
    provider_account_id TEXT NOT NULL REFERENCES accounts(id),
    month TEXT NOT NULL,
    currency TEXT NOT NULL,
    gross TEXT NOT NULL,
    provider_share TEXT NOT NULL,
    platform_share TEXT NOT NULL,
    issued_ms BIGINT NOT NULL,
    UNIQUE (provider_account_id, month, currency)
);
