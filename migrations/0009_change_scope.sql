-- SPEC §4 incremental sync: each change-log row names what its write touched, so that a data
-- plane can re-read only that. `accounts`: provider accounts whose routes changed (a data plane
-- re-reads each with all its integrations, collaborators and authorized subjects; one no longer
-- found was deleted). `subjects`: subjects whose callers changed (re-read with their usable
-- keys; a key or subject no longer found was revoked or deleted). Null in either: the write
-- did not say (rows written before this migration, key rotation, bootstrap), and data planes
-- reload in full.
alter table config_changes
    add column accounts uuid[],
    add column subjects uuid[];
