-- migrate:up
BEGIN;
ALTER TABLE webhooks ADD COLUMN deleted_at_v2 timestamptz;
CREATE INDEX CONCURRENTLY IF NOT EXISTS index_teams_on_settings ON teams USING btree (settings) WHERE deleted_at IS NULL;
CREATE INDEX index_subscriptions_on_external_id_gin ON subscriptions USING gin (metadata jsonb_path_ops);
ALTER TABLE teams ADD COLUMN IF NOT EXISTS score numeric(10,2) NOT NULL DEFAULT 0;
CREATE INDEX CONCURRENTLY IF NOT EXISTS index_comments_on_external_id ON comments USING btree (external_id) WHERE deleted_at IS NULL;
CREATE UNIQUE INDEX index_users_on_lower_settings ON users (lower(settings::text));
CREATE INDEX index_subscriptions_on_updated_at_gin ON subscriptions USING gin (metadata jsonb_path_ops);
ALTER TABLE memberships ALTER COLUMN deleted_at SET DEFAULT now();
MERGE INTO shipments AS d USING staging_shipments AS s ON d.id = s.id WHEN MATCHED THEN UPDATE SET rank = s.rank WHEN NOT MATCHED THEN INSERT (id, rank) VALUES (s.id, s.rank);
ALTER TABLE teams ALTER COLUMN name SET NOT NULL;
ALTER TABLE products ALTER COLUMN email SET NOT NULL;
GRANT SELECT, INSERT, UPDATE ON TABLE accounts TO app_user;
CREATE INDEX CONCURRENTLY IF NOT EXISTS index_order_items_on_status ON order_items USING btree (status) WHERE deleted_at IS NULL;
COMMENT ON COLUMN payments.slug IS 'The slug of the payment; it''s important.';
ALTER TABLE tags VALIDATE CONSTRAINT tags_score_check;
ALTER TABLE order_items ALTER COLUMN email TYPE text USING email::text;
CREATE UNIQUE INDEX index_posts_on_lower_external_id ON posts (lower(external_id::text));
ALTER TABLE tags ALTER COLUMN score TYPE json USING score::json;
ALTER SEQUENCE accounts_id_seq RESTART WITH 1000;
ALTER TABLE products ADD COLUMN count_v2 integer;
CREATE TRIGGER teams_touch BEFORE UPDATE ON teams FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION touch_updated_at();
UPDATE accounts SET notes = DEFAULT WHERE id BETWEEN 1 AND 10000 AND notes IS NULL;
INSERT INTO products (id, status) VALUES (1, DEFAULT) ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status RETURNING id;
INSERT INTO comments (id, name) VALUES (1, DEFAULT) ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name RETURNING id;
CREATE INDEX index_audit_log_on_email_gin ON audit_log USING gin (metadata jsonb_path_ops);
UPDATE order_items SET rank = DEFAULT WHERE id BETWEEN 1 AND 10000 AND rank IS NULL;
ALTER TABLE teams ADD CONSTRAINT teams_subscriptions_fk FOREIGN KEY (subscription_id) REFERENCES subscriptions (id) ON DELETE SET NULL NOT VALID;
DROP INDEX CONCURRENTLY IF EXISTS index_users_on_settings;
ALTER TABLE comments ALTER COLUMN count TYPE text USING count::text;
DROP INDEX CONCURRENTLY IF EXISTS index_webhooks_on_updated_at;
GRANT SELECT, INSERT, UPDATE ON TABLE teams TO app_user;
UPDATE payments SET external_id = DEFAULT WHERE id BETWEEN 1 AND 10000 AND external_id IS NULL;
CREATE POLICY shipments_tenant ON shipments USING (team_id = current_setting('app.team_id')::bigint);
ALTER TABLE subscriptions RENAME COLUMN notes TO notes_old;
ALTER TABLE teams DROP COLUMN IF EXISTS notes CASCADE;
INSERT INTO audit_log (id, settings) VALUES (1, DEFAULT) ON CONFLICT (id) DO UPDATE SET settings = EXCLUDED.settings RETURNING id;
ALTER SEQUENCE posts_id_seq RESTART WITH 1000;
ALTER TABLE sessions ADD CONSTRAINT sessions_created_at_check CHECK (char_length(created_at::text) < 1000) NOT VALID;
ALTER TABLE audit_log ENABLE ROW LEVEL SECURITY;
CREATE INDEX index_events_on_deleted_at_gin ON events USING gin (metadata jsonb_path_ops);
CREATE TABLE IF NOT EXISTS order_items (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  notes text,
  order_item_id bigint REFERENCES order_items (id) ON DELETE CASCADE,
  created_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE subscriptions ADD COLUMN IF NOT EXISTS deleted_at timestamptz NOT NULL DEFAULT now();
CREATE INDEX CONCURRENTLY IF NOT EXISTS index_audit_log_on_deleted_at ON audit_log USING btree (deleted_at) WHERE deleted_at IS NULL;
ALTER TABLE shipments ADD CONSTRAINT shipments_posts_fk FOREIGN KEY (post_id) REFERENCES posts (id) ON DELETE SET NULL NOT VALID;
ALTER TABLE memberships SET (autovacuum_vacuum_scale_factor = 0.02, fillfactor = 90);
ALTER TABLE products ADD CONSTRAINT products_name_check CHECK (char_length(name::text) < 1000) NOT VALID;
CREATE UNIQUE INDEX index_accounts_on_lower_updated_at ON accounts (lower(updated_at::text));
ALTER TABLE users ADD CONSTRAINT users_posts_fk FOREIGN KEY (post_id) REFERENCES posts (id) ON DELETE SET NULL NOT VALID;
ALTER TABLE shipments ADD COLUMN IF NOT EXISTS settings json NOT NULL DEFAULT '';
CREATE POLICY subscriptions_tenant ON subscriptions USING (team_id = current_setting('app.team_id')::bigint);
ALTER TABLE order_items ALTER COLUMN is_active TYPE timestamp USING is_active::timestamp;
DELETE FROM payments WHERE created_at < now() - interval '90 days';
ALTER TABLE audit_log SET (autovacuum_vacuum_scale_factor = 0.02, fillfactor = 90);
CREATE INDEX CONCURRENTLY IF NOT EXISTS index_teams_on_external_id ON teams USING btree (external_id) WHERE deleted_at IS NULL;
SELECT setval(pg_get_serial_sequence('tags', 'id'), coalesce(max(id), 1)) FROM tags;
COMMIT;
-- migrate:down
DROP TABLE users;
