SET statement_timeout = 0;
SET lock_timeout = '5s';
SET client_encoding = 'UTF8';
SELECT pg_catalog.set_config('search_path', '', false);
CREATE EXTENSION IF NOT EXISTS pgcrypto WITH SCHEMA public;
CREATE TYPE public.order_status AS ENUM ('pending', 'paid', 'shipped');
ALTER TYPE public.order_status ADD VALUE IF NOT EXISTS 'refunded' AFTER 'shipped';
CREATE FUNCTION public.touch_updated_at() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
  NEW.updated_at := now(); -- keep; semicolons inside
  RETURN NEW;
END;
$$;
CREATE FUNCTION add(a integer, b integer) RETURNS integer LANGUAGE sql IMMUTABLE BEGIN ATOMIC SELECT a + b; END;
DO $do$
DECLARE r record;
BEGIN
  FOR r IN SELECT tablename FROM pg_tables WHERE schemaname = 'public' LOOP
    EXECUTE format('ANALYZE %I', r.tablename);
  END LOOP;
END
$do$;
CREATE TABLE public.measurements (id bigint NOT NULL, at timestamptz NOT NULL, value double precision) PARTITION BY RANGE (at);
CREATE TABLE public.measurements_2025 PARTITION OF public.measurements FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
ALTER TABLE public.measurements DETACH PARTITION public.measurements_2025 CONCURRENTLY;
CREATE MATERIALIZED VIEW public.daily AS SELECT date_trunc('day', at) AS day, avg(value) FROM public.measurements GROUP BY 1 WITH NO DATA;
REFRESH MATERIALIZED VIEW CONCURRENTLY public.daily;
CREATE DOMAIN public.email AS text CHECK (VALUE ~ '^[^@]+@[^@]+$');

ALTER TABLE comments ALTER COLUMN currency DROP NOT NULL;
ALTER TABLE api_keys ALTER COLUMN amount_cents SET NOT NULL;
SELECT setval(pg_get_serial_sequence('webhooks', 'id'), coalesce(max(id), 1)) FROM webhooks;
SELECT setval(pg_get_serial_sequence('teams', 'id'), coalesce(max(id), 1)) FROM teams;
ALTER TABLE accounts ALTER COLUMN amount_cents SET NOT NULL;
ALTER TABLE addresses ADD COLUMN IF NOT EXISTS is_active boolean NOT NULL DEFAULT false;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_currency_check CHECK (char_length(currency::text) < 1000) NOT VALID;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_api_keys_fk FOREIGN KEY (api_key_id) REFERENCES api_keys (id) ON DELETE SET NULL NOT VALID;
ALTER TABLE order_items ALTER COLUMN updated_at DROP NOT NULL;
SELECT setval(pg_get_serial_sequence('addresses', 'id'), coalesce(max(id), 1)) FROM addresses;
COMMENT ON COLUMN comments.notes IS 'The notes of the comment; it''s important.';
COMMENT ON COLUMN sessions.created_at IS 'The created_at of the session; it''s important.';
DELETE FROM webhooks WHERE created_at < now() - interval '90 days';
CREATE POLICY shipments_tenant ON shipments USING (team_id = current_setting('app.team_id')::bigint);
CREATE POLICY payments_tenant ON payments USING (team_id = current_setting('app.team_id')::bigint);
GRANT SELECT, INSERT, UPDATE ON TABLE accounts TO app_user;
ANALYZE comments;
ALTER TABLE orders ALTER COLUMN status DROP NOT NULL;
CREATE TRIGGER accounts_touch BEFORE UPDATE ON accounts FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION touch_updated_at();
ALTER TABLE posts VALIDATE CONSTRAINT posts_email_check;
CREATE UNIQUE INDEX index_shipments_on_lower_amount_cents ON shipments (lower(amount_cents::text));
ALTER TABLE audit_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE subscriptions ENABLE ROW LEVEL SECURITY;
INSERT INTO api_keys (id, metadata) VALUES (1, DEFAULT) ON CONFLICT (id) DO UPDATE SET metadata = EXCLUDED.metadata RETURNING id;
ALTER TABLE teams ADD CONSTRAINT teams_score_check CHECK (char_length(score::text) < 1000) NOT VALID;
CREATE INDEX index_orders_on_created_at_gin ON orders USING gin (metadata jsonb_path_ops);
DELETE FROM users WHERE created_at < now() - interval '90 days';
CREATE OR REPLACE VIEW active_users AS SELECT * FROM users WHERE deleted_at IS NULL WITH CASCADED CHECK OPTION;
ALTER TABLE shipments ALTER COLUMN count SET NOT NULL;
ALTER TABLE memberships ENABLE ROW LEVEL SECURITY;
ALTER TABLE tags ALTER COLUMN amount_cents SET NOT NULL;
ALTER TABLE products VALIDATE CONSTRAINT products_status_check;
CREATE TABLE IF NOT EXISTS order_items (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  count integer,
  order_item_id bigint REFERENCES order_items (id) ON DELETE CASCADE,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE OR REPLACE VIEW active_addresses AS SELECT * FROM addresses WHERE deleted_at IS NULL WITH CASCADED CHECK OPTION;
CREATE TRIGGER shipments_touch BEFORE UPDATE ON shipments FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION touch_updated_at();
CREATE OR REPLACE VIEW active_invoices AS SELECT * FROM invoices WHERE deleted_at IS NULL WITH CASCADED CHECK OPTION;
ANALYZE subscriptions;
ALTER TABLE subscriptions ADD CONSTRAINT subscriptions_rank_check CHECK (char_length(rank::text) < 1000) NOT VALID;
ALTER TABLE order_items VALIDATE CONSTRAINT order_items_count_check;
CREATE OR REPLACE VIEW active_webhooks AS SELECT * FROM webhooks WHERE deleted_at IS NULL WITH CASCADED CHECK OPTION;
COMMENT ON COLUMN invoices.published_at IS 'The published_at of the invoice; it''s important.';
ALTER TABLE orders VALIDATE CONSTRAINT orders_metadata_check;
ALTER TABLE ONLY posts ADD CONSTRAINT posts_pkey PRIMARY KEY USING INDEX posts_id_idx;
CREATE INDEX index_sessions_on_updated_at_gin ON sessions USING gin (metadata jsonb_path_ops);
ALTER TABLE products ADD COLUMN slug_v2 varchar(100);
CREATE INDEX CONCURRENTLY IF NOT EXISTS index_users_on_metadata ON users USING btree (metadata) WHERE deleted_at IS NULL;
CREATE OR REPLACE VIEW active_shipments AS SELECT * FROM shipments WHERE deleted_at IS NULL WITH CASCADED CHECK OPTION;
LOCK TABLE orders IN SHARE ROW EXCLUSIVE MODE;
CREATE TABLE IF NOT EXISTS products (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  count integer,
  subscription_id bigint REFERENCES subscriptions (id) ON DELETE CASCADE,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TRIGGER subscriptions_touch BEFORE UPDATE ON subscriptions FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION touch_updated_at();
ALTER TABLE ONLY products ADD CONSTRAINT products_pkey PRIMARY KEY USING INDEX products_id_idx;
ALTER TABLE orders ALTER COLUMN is_active TYPE text USING is_active::text;
ALTER TABLE payments ADD CONSTRAINT payments_created_at_check CHECK (char_length(created_at::text) < 1000) NOT VALID;
LOCK TABLE addresses IN SHARE ROW EXCLUSIVE MODE;
ALTER TABLE posts RENAME COLUMN currency TO currency_old;
