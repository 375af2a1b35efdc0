-- PostgreSQL: controller, the tables as migrations/sqlite/ leaves them by 0004_controller.sql.
CREATE TABLE resource_instances (
    rowid BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE, -- SQLite's insertion order
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
    state TEXT NOT NULL CHECK (state = 'provisioning' OR state = 'active' OR state = 'inactive' OR
                                         state = 'failed' OR state = 'pending_reclamation'
                                         OR state = 'removing' OR state = 'removed'),
    enabled BIGINT NOT NULL DEFAULT 1, -- what the broker was last told (/bluemix_v1)
    dashboard_url TEXT,
    last_operation TEXT NOT NULL DEFAULT '{}', -- JSON: {type, state, async, description}
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL,
    deleted_ms BIGINT
);

CREATE INDEX resource_instances_by_account_page ON resource_instances(account_id);

CREATE TABLE instance_plan_history (
    rowid BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE, -- SQLite's insertion order
    instance_id TEXT NOT NULL REFERENCES resource_instances(guid),
    plan_id TEXT NOT NULL REFERENCES plans(id),
    from_ms BIGINT NOT NULL,
    PRIMARY KEY (instance_id, from_ms)
);
