-- Usage records, normalised for ingestion speed. A record used to repeat its instance, plan,
-- region, offering, account, submitter and month as text in a row of its own plus two text
-- indexes; the commit of those bytes was most of the cost of accepting a record. Now:
--   usage_meters   one row per instance, plan and region that has usage (rated together);
--   usage_batches  one row per accepted request: who submitted it, and when;
--   usage_records  per record only what is its own, with the signature as a unique key
--                  (meter, end, start, consumer): the same de-duplication as before, since a
--                  meter stands for exactly one (instance, plan, region).
-- A record's month and instant follow from start and end; usage_records_full shows a record
-- with everything it used to carry. usage_records has no REFERENCES clauses on purpose: the
-- meter and the batch are written in the same transaction just before it, and a foreign key
-- check would be two more b-tree lookups per record.
CREATE TABLE usage_meters (
    id INTEGER PRIMARY KEY,
    instance_id TEXT NOT NULL REFERENCES resource_instances(guid),
    plan_id TEXT NOT NULL,
    region TEXT NOT NULL,
    offering_id TEXT NOT NULL,
    account_id TEXT NOT NULL, -- the instance's (the consumer's) account
    UNIQUE (instance_id, plan_id, region)
);
CREATE INDEX usage_meters_by_account ON usage_meters(account_id);
CREATE INDEX usage_meters_by_offering ON usage_meters(offering_id);

CREATE TABLE usage_batches (
    id INTEGER PRIMARY KEY,
    submitted_by TEXT NOT NULL, -- the provider's iam_id
    accepted_ms INTEGER NOT NULL
);

CREATE TABLE usage_records_v2 (
    id INTEGER PRIMARY KEY,
    meter INTEGER NOT NULL,            -- usage_meters.id
    consumer_id TEXT NOT NULL,         -- '' when the record has none
    start_ms INTEGER NOT NULL,
    end_ms INTEGER NOT NULL,
    measured_usage TEXT NOT NULL,      -- JSON [{measure, quantity}], quantities canonical text
    batch INTEGER NOT NULL             -- usage_batches.id
);

INSERT INTO usage_meters (instance_id, plan_id, region, offering_id, account_id)
    SELECT instance_id, plan_id, region, min(offering_id), min(account_id) FROM usage_records
    GROUP BY instance_id, plan_id, region ORDER BY min(id);
INSERT INTO usage_batches (submitted_by, accepted_ms)
    SELECT submitted_by, accepted_ms FROM usage_records GROUP BY submitted_by, accepted_ms
    ORDER BY min(id);
INSERT INTO usage_records_v2 (id, meter, consumer_id, start_ms, end_ms, measured_usage, batch)
    SELECT r.id, m.id, r.consumer_id, r.start_ms, r.end_ms, r.measured_usage, b.id
    FROM usage_records r
    JOIN usage_meters m ON m.instance_id = r.instance_id AND m.plan_id = r.plan_id
                       AND m.region = r.region
    JOIN usage_batches b ON b.submitted_by = r.submitted_by AND b.accepted_ms = r.accepted_ms;
DROP TABLE usage_records;
ALTER TABLE usage_records_v2 RENAME TO usage_records;
CREATE UNIQUE INDEX usage_records_signature ON usage_records(meter, end_ms, start_ms, consumer_id);

CREATE VIEW usage_records_full AS
    SELECT r.id, m.instance_id, r.consumer_id, m.plan_id, m.region, r.start_ms, r.end_ms,
           CASE WHEN r.end_ms > r.start_ms THEN r.end_ms - 1 ELSE r.end_ms END AS instant_ms,
           m.offering_id, m.account_id, r.measured_usage, b.submitted_by, b.accepted_ms,
           r.meter
    FROM usage_records r
    JOIN usage_meters m ON m.id = r.meter
    JOIN usage_batches b ON b.id = r.batch;
