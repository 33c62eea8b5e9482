-- Shapes met in public migration histories (written for duet, not copied): psql variables as
-- schema placeholders, SET search_path then unqualified names, composite types, USING rewrites,
-- schema-qualified indexes, partitions attached behind a CHECK.
create table :queue_schema.tickets (
  id bigint generated always as identity primary key,
  lane text not null default 'main',
  payload jsonb default '{}'::jsonb not null,
  tries smallint default 0 not null
);
alter table :queue_schema.tickets enable row level security;
create index on :queue_schema.tickets (lane, id);
comment on table :"queue_schema".tickets is :'ticket_comment';
SET search_path TO ledger, public;
CREATE TABLE entries (id bigint PRIMARY KEY, memo varchar(40), kind text);
ALTER TABLE ledger.entries ALTER COLUMN memo TYPE varchar(80);
ALTER TABLE entries ALTER COLUMN kind TYPE text USING CASE WHEN kind = '' THEN NULL ELSE kind END;
CREATE TYPE ledger.posting AS (account text, cents int);
ALTER TYPE ledger.posting ALTER ATTRIBUTE cents TYPE bigint;
ALTER TYPE ledger.posting ADD ATTRIBUTE currency char(3);
RESET search_path;
CREATE TABLE readings (sensor int NOT NULL, taken date NOT NULL, v numeric) PARTITION BY RANGE (taken);
CREATE TABLE readings_2031_01 (sensor int NOT NULL, taken date NOT NULL, v numeric);
ALTER TABLE readings_2031_01 ADD CONSTRAINT readings_2031_01_taken CHECK (taken >= DATE '2031-01-01' AND taken < DATE '2031-02-01');
ALTER TABLE readings ATTACH PARTITION readings_2031_01 FOR VALUES FROM ('2031-01-01') TO ('2031-02-01');
ALTER TABLE readings_2031_01 DROP CONSTRAINT readings_2031_01_taken;
CREATE TABLE readings_other PARTITION OF readings DEFAULT;
