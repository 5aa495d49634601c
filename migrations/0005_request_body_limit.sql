-- Optional per-integration request body limit (RELIABILITY S11); null means none.
alter table integrations
    add column max_request_body_bytes bigint,
    add constraint integrations_max_request_body_bytes_check
        check (max_request_body_bytes is null or max_request_body_bytes > 0);
