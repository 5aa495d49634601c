-- The whole data model of SPEC §1, plus the config version and change log of SPEC §4 / RELIABILITY P3.

-- P3: one config version, a single row bumped with UPDATE ... RETURNING inside each writing
-- transaction (a sequence would hand out values before commit, so readers could skip rows).
create table config_version (
    id boolean primary key default true,
    version bigint not null,
    constraint config_version_single_row check (id)
);
insert into config_version (id, version) values (true, 0);

-- SPEC §4: each write commits a change-log row carrying its version.
create table config_changes (
    version bigint primary key,
    kind text not null,
    object_name text not null,
    operation text not null,
    changed_at timestamptz not null default now(),
    constraint config_changes_operation_check check (operation in ('create', 'update', 'delete'))
);

-- Users, teams and virtual accounts are subjects: one table so that collaborators, authorized
-- subjects and API keys can reference any of them with a foreign key.
create table subjects (
    id uuid primary key,
    kind text not null,
    name text not null,
    is_admin boolean not null default false,
    created_at timestamptz not null default now(),
    constraint subjects_kind_check check (kind in ('user', 'team', 'virtualaccount')),
    constraint subjects_admin_is_user check (kind = 'user' or not is_admin),
    constraint subjects_kind_name_key unique (kind, name)
);

create table team_members (
    team_id uuid not null constraint team_members_team_fkey references subjects (id) on delete cascade,
    user_id uuid not null constraint team_members_user_fkey references subjects (id) on delete cascade,
    role text not null default 'member',
    constraint team_members_pkey primary key (team_id, user_id),
    constraint team_members_role_check check (role in ('member', 'manager'))
);
create index team_members_user_idx on team_members (user_id);

-- Only a SHA-256 digest of each key's secret is stored (RELIABILITY S9).
create table api_keys (
    id uuid primary key,
    subject_id uuid not null constraint api_keys_subject_fkey references subjects (id) on delete cascade,
    name text not null,
    digest bytea not null constraint api_keys_digest_key unique,
    created_at timestamptz not null default now(),
    expires_at timestamptz,
    revoked_at timestamptz,
    last_used_at timestamptz
);
create index api_keys_subject_idx on api_keys (subject_id);

create table provider_accounts (
    id uuid primary key,
    name text not null constraint provider_accounts_name_key unique,
    endpoint_type text,
    header_auth jsonb,
    custom_headers jsonb not null default '{}',
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint provider_accounts_endpoint_type_check
        check (endpoint_type in ('azure-speech-service', 'other'))
);

create table collaborators (
    account_id uuid not null constraint collaborators_account_fkey references provider_accounts (id) on delete cascade,
    subject_id uuid not null constraint collaborators_subject_fkey references subjects (id) on delete cascade,
    role text not null,
    constraint collaborators_pkey primary key (account_id, subject_id),
    constraint collaborators_role_check
        check (role in ('provider-account-manager', 'provider-account-access'))
);
create index collaborators_subject_idx on collaborators (subject_id);

create table integrations (
    id uuid primary key,
    account_id uuid not null constraint integrations_account_fkey references provider_accounts (id) on delete cascade,
    name text not null,
    base_url text not null,
    header_auth jsonb,
    custom_headers jsonb not null default '{}',
    tls_reject_unauthorized boolean not null default true,
    tls_ca_certs text,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint integrations_account_name_key unique (account_id, name)
);

create table authorized_subjects (
    integration_id uuid not null constraint authorized_subjects_integration_fkey references integrations (id) on delete cascade,
    subject_id uuid not null constraint authorized_subjects_subject_fkey references subjects (id) on delete cascade,
    constraint authorized_subjects_pkey primary key (integration_id, subject_id)
);
create index authorized_subjects_subject_idx on authorized_subjects (subject_id);
