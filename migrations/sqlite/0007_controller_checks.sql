-- The controller's CHECK constraints with IN lists of more than two values made SQLite build
-- a temporary b-tree of the list on every insert and every state change of these tables. The
-- same rules, written as comparisons, are changed in place by the procedure of SQLite's
-- ALTER TABLE documentation ("Making Other Kinds Of Table Schema Changes"), which allows
-- changing a CHECK constraint that the stored rows satisfy in both forms. The migration
-- runner bumps the schema version afterwards, as that procedure requires.
PRAGMA writable_schema = ON;
UPDATE sqlite_schema SET sql = replace(sql,
    'CHECK (state IN (''provisioning'', ''active'', ''inactive'', ''failed'',
                                         ''pending_reclamation'', ''removing'', ''removed''))',
    'CHECK (state = ''provisioning'' OR state = ''active'' OR state = ''inactive'' OR
                                         state = ''failed'' OR state = ''pending_reclamation''
                                         OR state = ''removing'' OR state = ''removed'')')
    WHERE type = 'table' AND name = 'resource_instances';
UPDATE sqlite_schema SET sql = replace(replace(sql,
    'CHECK (kind IN (''create'', ''delete'', ''update'', ''orphan_mitigation'',
                                       ''bind'', ''unbind'', ''enable'', ''disable''))',
    'CHECK (kind = ''create'' OR kind = ''delete'' OR kind = ''update'' OR
                                       kind = ''orphan_mitigation'' OR kind = ''bind'' OR
                                       kind = ''unbind'' OR kind = ''enable'' OR
                                       kind = ''disable'')'),
    'CHECK (state IN (''pending'', ''in_progress'', ''succeeded'', ''failed''))',
    'CHECK (state = ''pending'' OR state = ''in_progress'' OR state = ''succeeded'' OR
                                        state = ''failed'')')
    WHERE type = 'table' AND name = 'rc_operations';
UPDATE sqlite_schema SET sql = replace(sql,
    'CHECK (state IN (''provisioning'', ''active'', ''failed'', ''removing'',
                                         ''removed''))',
    'CHECK (state = ''provisioning'' OR state = ''active'' OR state = ''failed'' OR
                                         state = ''removing'' OR state = ''removed'')')
    WHERE type = 'table' AND name = 'resource_keys';
PRAGMA writable_schema = OFF;
-- Each text above must have been found: a table still holding one of them fails this.
CREATE TEMP TABLE check_rewrite (left_over INTEGER CHECK (left_over = 0));
INSERT INTO check_rewrite SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND
    name IN ('resource_instances', 'rc_operations', 'resource_keys') AND
    (sql LIKE '%state IN (%' OR sql LIKE '%kind IN (%');
DROP TABLE check_rewrite;
