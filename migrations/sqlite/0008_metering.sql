-- Metering (spec/billing.md, "Submitting usage"): the usage records providers submit, each an
-- immutable fact accepted once. The unique signature makes de-duplication part of the write
-- itself: the first accepted record wins across batches, retries, restarts and concurrent
-- submitters, and a failed write leaves nothing to count.
CREATE TABLE usage_records (
    id INTEGER PRIMARY KEY,
    instance_id TEXT NOT NULL REFERENCES resource_instances(guid),
    consumer_id TEXT NOT NULL DEFAULT '', -- '' when the record has none
    plan_id TEXT NOT NULL,
    region TEXT NOT NULL,
    start_ms INTEGER NOT NULL,
    end_ms INTEGER NOT NULL,
    instant_ms INTEGER NOT NULL,          -- end - 1 when end > start, else end
    month TEXT NOT NULL,                  -- YYYY-MM of the instant, UTC
    offering_id TEXT NOT NULL,
    account_id TEXT NOT NULL,             -- the instance's (the consumer's) account
    measured_usage TEXT NOT NULL,         -- JSON [{measure, quantity}], quantities canonical text
    submitted_by TEXT NOT NULL,           -- the provider's iam_id
    accepted_ms INTEGER NOT NULL
);
CREATE UNIQUE INDEX usage_records_signature
    ON usage_records(instance_id, consumer_id, plan_id, region, start_ms, end_ms);
CREATE INDEX usage_records_by_account ON usage_records(account_id, month);

-- Billing periods: a month is open until the operator closes it.
CREATE TABLE billing_periods (
    month TEXT PRIMARY KEY,               -- YYYY-MM
    state TEXT NOT NULL CHECK (state = 'open' OR state = 'closed'),
    closed_ms INTEGER
) WITHOUT ROWID;
