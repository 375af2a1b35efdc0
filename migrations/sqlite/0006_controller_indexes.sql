-- Fewer and smaller indexes on the controller's hot path: every write of an operation's
-- life updates each index it touches, and each page touched is written at commit.
--
-- Due operations: only the unfinished ones are indexed, in the order the driver pages them,
-- with their id: its scan reads the index alone, and an operation that ends leaves it.
DROP INDEX rc_operations_due;
CREATE INDEX rc_operations_due ON rc_operations(next_at_ms, id, state)
    WHERE state IN ('pending', 'in_progress');
-- An instance's operations, by instance alone: a state change no longer moves the entry.
DROP INDEX rc_operations_by_instance;
CREATE INDEX rc_operations_by_instance ON rc_operations(instance_id);
-- A key's operations (only operations on keys have one).
CREATE INDEX rc_operations_by_key ON rc_operations(key_id) WHERE key_id IS NOT NULL;
-- Lists page through an account's instances with resource_instances_by_account_page, which
-- serves an account's suspension too: this one only cost every state change a write.
DROP INDEX resource_instances_by_account;
-- A plan history is read by instance and time only: a table without rowid is its own index.
CREATE TABLE instance_plan_history_new (
    instance_id TEXT NOT NULL REFERENCES resource_instances(guid),
    plan_id TEXT NOT NULL REFERENCES plans(id),
    from_ms INTEGER NOT NULL,
    PRIMARY KEY (instance_id, from_ms)
) WITHOUT ROWID;
INSERT INTO instance_plan_history_new SELECT instance_id, plan_id, from_ms
    FROM instance_plan_history;
DROP TABLE instance_plan_history;
ALTER TABLE instance_plan_history_new RENAME TO instance_plan_history;
