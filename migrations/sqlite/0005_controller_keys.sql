-- Resource controller, second part: resource keys (the brokers' bindings, with their
-- credentials sealed), plan changes, enable/disable (account suspension), and reclamation.
-- SQLite cannot change a CHECK constraint in place, so the controller's tables are copied
-- aside, dropped children first, made anew and filled again.
CREATE TEMP TABLE old_instances AS SELECT * FROM resource_instances;
CREATE TEMP TABLE old_plan_history AS SELECT * FROM instance_plan_history;
CREATE TEMP TABLE old_operations AS SELECT * FROM rc_operations;
DROP TABLE rc_operations;
DROP TABLE instance_plan_history;
DROP TABLE resource_instances;

CREATE TABLE resource_instances (
    guid TEXT PRIMARY KEY,
    crn TEXT NOT NULL UNIQUE,           -- crn:v1:osbill:public:<service>:<region>:a/<account>:<guid>::
    account_id TEXT NOT NULL REFERENCES accounts(id),
    resource_group_id TEXT NOT NULL DEFAULT 'default',
    name TEXT NOT NULL,
    offering_id TEXT NOT NULL REFERENCES offerings(id),
    plan_id TEXT NOT NULL REFERENCES plans(id),
    region TEXT NOT NULL,
    broker_id TEXT NOT NULL REFERENCES brokers(id),
    parameters TEXT,                    -- JSON object: the create's, merged with each update's
    -- inactive: disabled while its account is suspended; pending_reclamation: deleted by its
    -- owner, disabled at the broker, and deprovisioned at reclaim_at_ms unless restored.
    state TEXT NOT NULL CHECK (state IN ('provisioning', 'active', 'inactive', 'failed',
                                         'pending_reclamation', 'removing', 'removed')),
    enabled INTEGER NOT NULL DEFAULT 1, -- what the broker was last told (/bluemix_v1)
    dashboard_url TEXT,
    last_operation TEXT NOT NULL DEFAULT '{}', -- JSON: {type, state, async, description}
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    deleted_ms INTEGER
);
CREATE INDEX resource_instances_by_account ON resource_instances(account_id, state);
-- Lists page through an account's instances in rowid order: this one walks them in order
-- from the page's start instead of sorting every instance the account ever had.
CREATE INDEX resource_instances_by_account_page ON resource_instances(account_id);

-- "The instance's plan at time t": the row with the latest from_ms not after t.
CREATE TABLE instance_plan_history (
    instance_id TEXT NOT NULL REFERENCES resource_instances(guid),
    plan_id TEXT NOT NULL REFERENCES plans(id),
    from_ms INTEGER NOT NULL,
    PRIMARY KEY (instance_id, from_ms)
);

-- Every state an instance was in, from when: billing asks when it was active or disabled.
-- Kept by triggers, so that no code path that changes a state can forget it.
CREATE TABLE instance_state_history (
    instance_id TEXT NOT NULL REFERENCES resource_instances(guid),
    state TEXT NOT NULL,
    from_ms INTEGER NOT NULL
);
CREATE INDEX instance_state_history_by_instance ON instance_state_history(instance_id, from_ms);
CREATE TRIGGER instance_state_born AFTER INSERT ON resource_instances BEGIN
    INSERT INTO instance_state_history (instance_id, state, from_ms)
        VALUES (new.guid, new.state, new.updated_ms);
END;
CREATE TRIGGER instance_state_moved AFTER UPDATE OF state ON resource_instances
    WHEN new.state IS NOT old.state BEGIN
    INSERT INTO instance_state_history (instance_id, state, from_ms)
        VALUES (new.guid, new.state, new.updated_ms);
END;

CREATE TABLE resource_keys (
    guid TEXT PRIMARY KEY,
    crn TEXT NOT NULL UNIQUE,
    account_id TEXT NOT NULL REFERENCES accounts(id),
    instance_id TEXT NOT NULL REFERENCES resource_instances(guid),
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    parameters TEXT,
    state TEXT NOT NULL CHECK (state IN ('provisioning', 'active', 'failed', 'removing',
                                         'removed')),
    credentials BLOB,                   -- the broker's credentials, sealed
    last_operation TEXT NOT NULL DEFAULT '{}',
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    deleted_ms INTEGER
);
CREATE INDEX resource_keys_by_account ON resource_keys(account_id, state);
CREATE INDEX resource_keys_by_account_page ON resource_keys(account_id);
CREATE INDEX resource_keys_by_instance ON resource_keys(instance_id, state);

-- Broker operations. orphan_mitigation is the DELETE the platform sends after a provision
-- or bind whose outcome it cannot know (timeout, 5xx, malformed answer); key_id names the
-- binding for bind, unbind and a binding's orphan mitigation. phase 'fetch' is the GET of
-- an asynchronous binding's credentials once it has succeeded.
CREATE TABLE rc_operations (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('create', 'delete', 'update', 'orphan_mitigation',
                                       'bind', 'unbind', 'enable', 'disable')),
    instance_id TEXT NOT NULL REFERENCES resource_instances(guid),
    key_id TEXT REFERENCES resource_keys(guid),
    initiator TEXT,                     -- iam_id sent as the originating identity
    prior_state TEXT,                   -- the instance's state to go back to if it fails
    plan_id TEXT,                       -- update: the plan to change to
    parameters TEXT,                    -- update: the parameters sent
    reason TEXT,                        -- enable, disable: IBM Cloud's reason code
    phase TEXT,
    broker_operation TEXT,              -- the broker's "operation" of a 202
    state TEXT NOT NULL CHECK (state IN ('pending', 'in_progress', 'succeeded', 'failed')),
    next_at_ms INTEGER NOT NULL,
    deadline_ms INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL
);
CREATE INDEX rc_operations_due ON rc_operations(state, next_at_ms);
CREATE INDEX rc_operations_by_instance ON rc_operations(instance_id, kind, state);
-- One operation at a time per instance: the store itself refuses a second one.
CREATE UNIQUE INDEX rc_operations_one_running ON rc_operations(instance_id)
    WHERE state IN ('pending', 'in_progress');

-- A deleted instance waits here until it is reclaimed (deprovisioned) or restored.
CREATE TABLE reclamations (
    id TEXT PRIMARY KEY,
    instance_id TEXT NOT NULL REFERENCES resource_instances(guid),
    account_id TEXT NOT NULL REFERENCES accounts(id),
    state TEXT NOT NULL CHECK (state IN ('SCHEDULED', 'RESTORING', 'RESTORED', 'RECLAIMING',
                                         'RECLAIMED')),
    initiator TEXT,
    reclaim_at_ms INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL
);
CREATE INDEX reclamations_due ON reclamations(state, reclaim_at_ms);
CREATE UNIQUE INDEX reclamations_one_open ON reclamations(instance_id)
    WHERE state IN ('SCHEDULED', 'RESTORING', 'RECLAIMING');

INSERT INTO resource_instances (guid, crn, account_id, resource_group_id, name, offering_id,
                                plan_id, region, broker_id, parameters, state, dashboard_url,
                                last_operation, created_ms, updated_ms, deleted_ms)
    SELECT guid, crn, account_id, resource_group_id, name, offering_id, plan_id, region,
           broker_id, parameters, state, dashboard_url, last_operation, created_ms, updated_ms,
           deleted_ms FROM old_instances;
INSERT INTO instance_plan_history SELECT * FROM old_plan_history;
-- What an instance from before was in when this history began.
DELETE FROM instance_state_history;
INSERT INTO instance_state_history (instance_id, state, from_ms)
    SELECT guid, state, updated_ms FROM resource_instances;
INSERT INTO rc_operations (id, kind, instance_id, initiator, prior_state, broker_operation,
                           state, next_at_ms, deadline_ms, attempts, error, created_ms,
                           updated_ms)
    SELECT id, kind, instance_id, initiator, prior_state, broker_operation, state, next_at_ms,
           deadline_ms, attempts, error, created_ms, updated_ms FROM old_operations;
DROP TABLE old_operations;
DROP TABLE old_plan_history;
DROP TABLE old_instances;
