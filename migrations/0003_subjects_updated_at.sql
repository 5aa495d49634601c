-- Users, teams and virtual accounts change (admin flag, members): their ETags need a
-- modification time.
alter table subjects add column updated_at timestamptz not null default now();
