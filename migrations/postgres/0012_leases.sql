-- Leases on work that must happen once across the nodes sharing one database (PostgreSQL):
-- polling a broker's operation, a month's close. A node holds one until until_ms, renews it
-- while it works, and gives it up when done; a node that died loses it when it expires.
CREATE TABLE store_leases (
    name TEXT PRIMARY KEY,     -- what is claimed: rc.op.<id>, billing.close.<YYYY-MM>
    node TEXT NOT NULL,        -- store_node(): host:pid:random
    until_ms BIGINT NOT NULL
);
