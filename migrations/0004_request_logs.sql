-- One record per proxied request (SPEC §3), written in batches by the data planes, off the
-- request path. Names are copied (not only ids) so records stay readable after a rename or a
-- delete; ids let the traces API decide visibility against the current configuration.
create table request_logs (
    request_id uuid primary key,
    started_at timestamptz not null,
    account text not null,
    endpoint text not null,
    account_id uuid,
    integration_id uuid,
    subject text,
    key_id uuid,
    method text not null,
    upstream_path text not null,
    status smallint not null,
    latency_us bigint not null,
    upstream_ttfb_us bigint,
    bytes_in bigint not null,
    bytes_out bigint not null,
    error_type text,
    trace_id text not null,
    data_plane text not null
);
create index request_logs_started_idx on request_logs (started_at desc, request_id);
create index request_logs_account_started_idx on request_logs (account_id, started_at desc);
