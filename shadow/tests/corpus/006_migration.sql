CREATE TABLE IF NOT EXISTS audit_log (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  updated_at timestamptz,
  webhook_id bigint REFERENCES webhooks (id) ON DELETE CASCADE,
  created_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE payments VALIDATE CONSTRAINT payments_metadata_check;
DROP INDEX CONCURRENTLY IF EXISTS index_comments_on_updated_at;
CREATE TABLE IF NOT EXISTS tags (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  published_at timestamp,
  subscription_id bigint REFERENCES subscriptions (id) ON DELETE CASCADE,
  created_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON COLUMN users.external_id IS 'The external_id of the user; it''s important.';
ALTER TABLE products VALIDATE CONSTRAINT products_is_active_check;
ALTER TABLE invoices ALTER COLUMN name SET DEFAULT now();
ALTER TABLE shipments ADD COLUMN created_at_v2 timestamptz;
ALTER TABLE users ALTER COLUMN name DROP NOT NULL;
ALTER TABLE accounts ALTER COLUMN status DROP NOT NULL;
CREATE UNIQUE INDEX index_tags_on_lower_amount_cents ON tags (lower(amount_cents::text));
DELETE FROM order_items WHERE created_at < now() - interval '90 days';
CREATE UNIQUE INDEX index_subscriptions_on_lower_amount_cents ON subscriptions (lower(amount_cents::text));
UPDATE audit_log SET count = DEFAULT WHERE id BETWEEN 1 AND 10000 AND count IS NULL;
ALTER TABLE users ALTER COLUMN score SET NOT NULL;
DELETE FROM posts WHERE created_at < now() - interval '90 days';
SELECT setval(pg_get_serial_sequence('shipments', 'id'), coalesce(max(id), 1)) FROM shipments;
ALTER TABLE webhooks ALTER COLUMN amount_cents SET NOT NULL;
DELETE FROM api_keys WHERE created_at < now() - interval '90 days';
CREATE INDEX CONCURRENTLY IF NOT EXISTS index_payments_on_external_id ON payments USING btree (external_id) WHERE deleted_at IS NULL;
MERGE INTO audit_log AS d USING staging_audit_log AS s ON d.id = s.id WHEN MATCHED THEN UPDATE SET name = s.name WHEN NOT MATCHED THEN INSERT (id, name) VALUES (s.id, s.name);
ALTER TABLE order_items SET (autovacuum_vacuum_scale_factor = 0.02, fillfactor = 90);
CREATE UNIQUE INDEX index_webhooks_on_lower_metadata ON webhooks (lower(metadata::text));
ALTER TABLE sessions ALTER COLUMN rank TYPE timestamptz USING rank::timestamptz;
ALTER TABLE subscriptions SET (autovacuum_vacuum_scale_factor = 0.02, fillfactor = 90);
SELECT setval(pg_get_serial_sequence('order_items', 'id'), coalesce(max(id), 1)) FROM order_items;
UPDATE users SET score = DEFAULT WHERE id BETWEEN 1 AND 10000 AND score IS NULL;
CREATE TRIGGER teams_touch BEFORE UPDATE ON teams FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION touch_updated_at();
ALTER TABLE sessions ADD COLUMN IF NOT EXISTS notes text NOT NULL DEFAULT '';
ALTER SEQUENCE posts_id_seq RESTART WITH 1000;
ALTER SEQUENCE api_keys_id_seq RESTART WITH 1000;
ANALYZE events;
COMMENT ON COLUMN sessions.slug IS 'The slug of the session; it''s important.';
GRANT SELECT, INSERT, UPDATE ON TABLE shipments TO app_user;
DROP INDEX CONCURRENTLY IF EXISTS index_shipments_on_slug;
ALTER TABLE comments VALIDATE CONSTRAINT comments_updated_at_check;
ALTER TABLE order_items ADD CONSTRAINT order_items_updated_at_check CHECK (char_length(updated_at::text) < 1000) NOT VALID;
CREATE INDEX CONCURRENTLY IF NOT EXISTS index_audit_log_on_settings ON audit_log USING btree (settings) WHERE deleted_at IS NULL;
CREATE TRIGGER order_items_touch BEFORE UPDATE ON order_items FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION touch_updated_at();
SELECT setval(pg_get_serial_sequence('memberships', 'id'), coalesce(max(id), 1)) FROM memberships;
ALTER TABLE sessions ADD COLUMN slug_v2 varchar(100);
DROP INDEX CONCURRENTLY IF EXISTS index_invoices_on_metadata;
CREATE INDEX index_teams_on_external_id_gin ON teams USING gin (metadata jsonb_path_ops);
GRANT SELECT, INSERT, UPDATE ON TABLE payments TO app_user;
ALTER TABLE events ENABLE ROW LEVEL SECURITY;
ANALYZE payments;
GRANT SELECT, INSERT, UPDATE ON TABLE users TO app_user;
ALTER TABLE users ADD COLUMN IF NOT EXISTS is_active boolean NOT NULL DEFAULT false;
CREATE INDEX CONCURRENTLY IF NOT EXISTS index_events_on_published_at ON events USING btree (published_at) WHERE deleted_at IS NULL;
ANALYZE webhooks;
ALTER TABLE api_keys ADD COLUMN updated_at_v2 timestamptz;
ANALYZE posts;
ALTER TABLE products DROP COLUMN IF EXISTS created_at CASCADE;
INSERT INTO shipments (id, score) VALUES (1, DEFAULT) ON CONFLICT (id) DO UPDATE SET score = EXCLUDED.score RETURNING id;
ALTER TABLE tags ALTER COLUMN is_active DROP NOT NULL;
