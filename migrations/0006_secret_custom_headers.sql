-- Custom header values an operator marks secret are sealed at rest like header auth and masked
-- on reads; these columns name them.
alter table provider_accounts add column secret_custom_headers text[] not null default '{}';
alter table integrations add column secret_custom_headers text[] not null default '{}';
