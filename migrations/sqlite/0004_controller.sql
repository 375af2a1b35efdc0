-- Resource controller: consumers' instances of offerings, the plan each instance was on at
-- any time (billing rates usage by it), and the broker operations in flight, persisted so
-- that a restart resumes them.
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
    parameters TEXT,                    -- JSON object, as the consumer sent it
    state TEXT NOT NULL CHECK (state IN ('provisioning', 'active', 'inactive', 'failed',
                                         'removing', 'removed')),
    dashboard_url TEXT,
    last_operation TEXT NOT NULL DEFAULT '{}', -- JSON: {type, state, async, description}
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    deleted_ms INTEGER
);
CREATE INDEX resource_instances_by_account ON resource_instances(account_id, state);

-- "The instance's plan at time t": the row with the latest from_ms not after t.
CREATE TABLE instance_plan_history (
    instance_id TEXT NOT NULL REFERENCES resource_instances(guid),
    plan_id TEXT NOT NULL REFERENCES plans(id),
    from_ms INTEGER NOT NULL,
    PRIMARY KEY (instance_id, from_ms)
);

-- Broker operations. orphan_mitigation is the DELETE the platform sends after a provision
-- whose outcome it cannot know (timeout, 5xx, malformed answer).
CREATE TABLE rc_operations (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('create', 'delete', 'update', 'orphan_mitigation')),
    instance_id TEXT NOT NULL REFERENCES resource_instances(guid),
    initiator TEXT,                     -- iam_id sent as the originating identity
    prior_state TEXT,                   -- the instance's state to go back to if it fails
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
-- One operation at a time per instance: the store itself refuses a second one.
CREATE UNIQUE INDEX rc_operations_one_running ON rc_operations(instance_id)
    WHERE state IN ('pending', 'in_progress');
