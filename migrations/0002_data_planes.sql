-- RELIABILITY P11: each data plane reports in on every heartbeat (one upsert on its listening
-- connection, never on the request path), so the control plane can list the fleet and how far
-- behind each member is. A row per process start; rows of stopped data planes age out of view
-- by last_seen_at. No index beyond the key: the table stays small, and updates that touch no
-- indexed column are HOT updates, so a heartbeat's upsert leaves no index bloat behind.
create table data_planes (
    id uuid primary key,
    hostname text not null,
    addr text not null,
    applied_version bigint not null,
    started_at timestamptz not null,
    last_seen_at timestamptz not null
);
