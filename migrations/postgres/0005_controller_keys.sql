-- PostgreSQL: controller keys, the tables as migrations/sqlite/ leaves them by 0005_controller_keys.sql.
CREATE TABLE instance_state_history (
    rowid BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE, -- SQLite's insertion order
    instance_id TEXT NOT NULL REFERENCES resource_instances(guid),
    state TEXT NOT NULL,
    from_ms BIGINT NOT NULL
);

CREATE INDEX instance_state_history_by_instance ON instance_state_history(instance_id, from_ms);

CREATE TABLE resource_keys (
    rowid BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE, -- SQLite's insertion order
    guid TEXT PRIMARY KEY,
    crn TEXT NOT NULL UNIQUE,
    account_id TEXT NOT NULL REFERENCES accounts(id),
    instance_id TEXT NOT NULL REFERENCES resource_instances(guid),
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    parameters TEXT,
    state TEXT NOT NULL CHECK (state = 'provisioning' OR state = 'active' OR state = 'failed' OR
                                         state = 'removing' OR state = 'removed'),
    credentials BYTEA,                   -- the broker's credentials, sealed
    last_operation TEXT NOT NULL DEFAULT '{}',
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL,
    deleted_ms BIGINT
);

CREATE INDEX resource_keys_by_account ON resource_keys(account_id, state);

CREATE INDEX resource_keys_by_account_page ON resource_keys(account_id);

CREATE INDEX resource_keys_by_instance ON resource_keys(instance_id, state);

CREATE TABLE rc_operations (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind = 'create' OR kind = 'delete' OR kind = 'update' OR
                                       kind = 'orphan_mitigation' OR kind = 'bind' OR
                                       kind = 'unbind' OR kind = 'enable' OR
                                       kind = 'disable'),
    instance_id TEXT NOT NULL REFERENCES resource_instances(guid),
    key_id TEXT REFERENCES resource_keys(guid),
    initiator TEXT,                     -- iam_id sent as the originating identity
    prior_state TEXT,                   -- the instance's state to go back to if it fails
    plan_id TEXT,                       -- update: the plan to change to
    parameters TEXT,                    -- update: the parameters sent
    reason TEXT,                        -- enable, disable: IBM Cloud's reason code
    phase TEXT,
    broker_operation TEXT,              -- the broker's operation of a 202
    state TEXT NOT NULL CHECK (state = 'pending' OR state = 'in_progress' OR state = 'succeeded' OR
                                        state = 'failed'),
    next_at_ms BIGINT NOT NULL,
    deadline_ms BIGINT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    error TEXT,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL
);

CREATE UNIQUE INDEX rc_operations_one_running ON rc_operations(instance_id)
    WHERE state IN ('pending', 'in_progress');

CREATE INDEX rc_operations_due ON rc_operations(next_at_ms, id, state)
    WHERE state IN ('pending', 'in_progress');

CREATE INDEX rc_operations_by_instance ON rc_operations(instance_id);

CREATE INDEX rc_operations_by_key ON rc_operations(key_id) WHERE key_id IS NOT NULL;

CREATE TABLE reclamations (
    id TEXT PRIMARY KEY,
    instance_id TEXT NOT NULL REFERENCES resource_instances(guid),
    account_id TEXT NOT NULL REFERENCES accounts(id),
    state TEXT NOT NULL CHECK (state IN ('SCHEDULED', 'RESTORING', 'RESTORED', 'RECLAIMING',
                                         'RECLAIMED')),
    initiator TEXT,
    reclaim_at_ms BIGINT NOT NULL,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL
);

CREATE INDEX reclamations_due ON reclamations(state, reclaim_at_ms);

CREATE UNIQUE INDEX reclamations_one_open ON reclamations(instance_id)
    WHERE state IN ('SCHEDULED', 'RESTORING', 'RECLAIMING');

-- Every state an instance takes, with when: the history the platform's monthly fee reads.
CREATE FUNCTION instance_state_record() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' OR NEW.state IS DISTINCT FROM OLD.state THEN
        INSERT INTO instance_state_history (instance_id, state, from_ms)
            VALUES (NEW.guid, NEW.state, NEW.updated_ms);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER instance_state_born AFTER INSERT ON resource_instances
    FOR EACH ROW EXECUTE FUNCTION instance_state_record();
CREATE TRIGGER instance_state_moved AFTER UPDATE OF state ON resource_instances
    FOR EACH ROW EXECUTE FUNCTION instance_state_record();
