-- Every index on request_logs is paid on each of the thousands of rows per second the data
-- planes write. The traces API reads newest first through request_logs_started_idx and by id
-- through the primary key; its visibility test (admin, or account or integration in a set) is an
-- OR that walks request_logs_started_idx in order and filters, so the per-account index served no
-- query it plans and only slowed the writes.
drop index request_logs_account_started_idx;
