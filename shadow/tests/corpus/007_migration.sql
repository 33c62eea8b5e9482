UPDATE teams SET external_id = DEFAULT WHERE id BETWEEN 1 AND 10000 AND external_id IS NULL;
CREATE INDEX index_order_items_on_deleted_at_gin ON order_items USING gin (metadata jsonb_path_ops);
ALTER TABLE tags RENAME COLUMN notes TO notes_old;
CREATE INDEX index_orders_on_updated_at_gin ON orders USING gin (metadata jsonb_path_ops);
DELETE FROM invoices WHERE created_at < now() - interval '90 days';
CREATE INDEX index_api_keys_on_currency_gin ON api_keys USING gin (metadata jsonb_path_ops);
ALTER TABLE events ADD CONSTRAINT events_teams_fk FOREIGN KEY (team_id) REFERENCES teams (id) ON DELETE SET NULL NOT VALID;
DROP INDEX CONCURRENTLY IF EXISTS index_subscriptions_on_email;
SELECT setval(pg_get_serial_sequence('audit_log', 'id'), coalesce(max(id), 1)) FROM audit_log;
COMMENT ON COLUMN shipments.status IS 'The status of the shipment; it''s important.';
GRANT SELECT, INSERT, UPDATE ON TABLE tags TO app_user;
CREATE TABLE IF NOT EXISTS invoices (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  slug varchar(100),
  addresse_id bigint REFERENCES addresses (id) ON DELETE CASCADE,
  created_at timestamptz NOT NULL DEFAULT now()
);
UPDATE users SET updated_at = DEFAULT WHERE id BETWEEN 1 AND 10000 AND updated_at IS NULL;
ALTER TABLE shipments ADD CONSTRAINT shipments_sessions_fk FOREIGN KEY (session_id) REFERENCES sessions (id) ON DELETE SET NULL NOT VALID;
ALTER TABLE memberships ENABLE ROW LEVEL SECURITY;
COMMENT ON COLUMN api_keys.created_at IS 'The created_at of the api_key; it''s important.';
ALTER TABLE products ALTER COLUMN rank TYPE timestamptz USING rank::timestamptz;
UPDATE memberships SET amount_cents = DEFAULT WHERE id BETWEEN 1 AND 10000 AND amount_cents IS NULL;
MERGE INTO teams AS d USING staging_teams AS s ON d.id = s.id WHEN MATCHED THEN UPDATE SET deleted_at = s.deleted_at WHEN NOT MATCHED THEN INSERT (id, deleted_at) VALUES (s.id, s.deleted_at);
ALTER TABLE api_keys ADD CONSTRAINT api_keys_name_check CHECK (char_length(name::text) < 1000) NOT VALID;
CREATE TABLE IF NOT EXISTS subscriptions (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  deleted_at timestamptz,
  payment_id bigint REFERENCES payments (id) ON DELETE CASCADE,
  created_at timestamptz NOT NULL DEFAULT now()
);
MERGE INTO payments AS d USING staging_payments AS s ON d.id = s.id WHEN MATCHED THEN UPDATE SET count = s.count WHEN NOT MATCHED THEN INSERT (id, count) VALUES (s.id, s.count);
CREATE POLICY audit_log_tenant ON audit_log USING (team_id = current_setting('app.team_id')::bigint);
ALTER TABLE orders ADD COLUMN created_at_v2 timestamptz;
LOCK TABLE shipments IN SHARE ROW EXCLUSIVE MODE;
CREATE POLICY subscriptions_tenant ON subscriptions USING (team_id = current_setting('app.team_id')::bigint);
ALTER TABLE ONLY invoices ADD CONSTRAINT invoices_pkey PRIMARY KEY USING INDEX invoices_id_idx;
DELETE FROM subscriptions WHERE created_at < now() - interval '90 days';
ALTER TABLE teams ALTER COLUMN count SET NOT NULL;
ALTER TABLE audit_log ENABLE ROW LEVEL SECURITY;
ALTER TABLE comments SET (autovacuum_vacuum_scale_factor = 0.02, fillfactor = 90);
CREATE INDEX CONCURRENTLY IF NOT EXISTS index_products_on_rank ON products USING btree (rank) WHERE deleted_at IS NULL;
ALTER TABLE comments ALTER COLUMN settings TYPE char(3) USING settings::char(3);
ALTER TABLE accounts ALTER COLUMN is_active SET NOT NULL;
ALTER TABLE tags ADD COLUMN IF NOT EXISTS settings json NOT NULL DEFAULT '';
CREATE TRIGGER products_touch BEFORE UPDATE ON products FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION touch_updated_at();
ALTER TABLE shipments ADD COLUMN IF NOT EXISTS currency char(3) NOT NULL DEFAULT '';
ALTER TABLE memberships ADD COLUMN IF NOT EXISTS created_at timestamptz NOT NULL DEFAULT now();
ALTER TABLE teams RENAME COLUMN amount_cents TO amount_cents_old;
ALTER TABLE audit_log ADD CONSTRAINT audit_log_audit_log_fk FOREIGN KEY (audit_lo_id) REFERENCES audit_log (id) ON DELETE SET NULL NOT VALID;
SELECT setval(pg_get_serial_sequence('teams', 'id'), coalesce(max(id), 1)) FROM teams;
ALTER TABLE addresses ADD COLUMN IF NOT EXISTS name varchar(255) NOT NULL DEFAULT '';
ALTER TABLE order_items ALTER COLUMN external_id DROP NOT NULL;
CREATE POLICY users_tenant ON users USING (team_id = current_setting('app.team_id')::bigint);
CREATE UNIQUE INDEX index_api_keys_on_lower_amount_cents ON api_keys (lower(amount_cents::text));
CREATE TABLE IF NOT EXISTS invoices (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  email text,
  user_id bigint REFERENCES users (id) ON DELETE CASCADE,
  created_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE order_items RENAME COLUMN status TO status_old;
DROP INDEX CONCURRENTLY IF EXISTS index_subscriptions_on_email;
ALTER TABLE memberships ADD CONSTRAINT memberships_created_at_check CHECK (char_length(created_at::text) < 1000) NOT VALID;
ANALYZE orders;
ALTER TABLE events ALTER COLUMN name SET NOT NULL;
COMMENT ON COLUMN users.status IS 'The status of the user; it''s important.';
ALTER TABLE shipments ALTER COLUMN created_at SET NOT NULL;
ALTER TABLE comments VALIDATE CONSTRAINT comments_score_check;
CREATE POLICY invoices_tenant ON invoices USING (team_id = current_setting('app.team_id')::bigint);
