ALTER TABLE users RENAME COLUMN email TO email_old;
UPDATE teams SET updated_at = DEFAULT WHERE id BETWEEN 1 AND 10000 AND updated_at IS NULL;
GRANT SELECT, INSERT, UPDATE ON TABLE products TO app_user;
ALTER TABLE events ALTER COLUMN published_at SET NOT NULL;
ALTER TABLE posts RENAME COLUMN notes TO notes_old;
ALTER TABLE api_keys ADD COLUMN currency_v2 char(3);
ALTER TABLE memberships ADD CONSTRAINT memberships_invoices_fk FOREIGN KEY (invoice_id) REFERENCES invoices (id) ON DELETE SET NULL NOT VALID;
ALTER TABLE invoices ALTER COLUMN rank SET NOT NULL;
LOCK TABLE comments IN SHARE ROW EXCLUSIVE MODE;
CREATE INDEX CONCURRENTLY IF NOT EXISTS index_order_items_on_published_at ON order_items USING btree (published_at) WHERE deleted_at IS NULL;
ALTER SEQUENCE events_id_seq RESTART WITH 1000;
GRANT SELECT, INSERT, UPDATE ON TABLE api_keys TO app_user;
INSERT INTO shipments (id, slug) VALUES (1, DEFAULT) ON CONFLICT (id) DO UPDATE SET slug = EXCLUDED.slug RETURNING id;
DROP INDEX CONCURRENTLY IF EXISTS index_memberships_on_slug;
ALTER SEQUENCE webhooks_id_seq RESTART WITH 1000;
ALTER SEQUENCE invoices_id_seq RESTART WITH 1000;
ALTER TABLE comments ALTER COLUMN status DROP NOT NULL;
CREATE OR REPLACE VIEW active_products AS SELECT * FROM products WHERE deleted_at IS NULL WITH CASCADED CHECK OPTION;
CREATE INDEX index_invoices_on_metadata_gin ON invoices USING gin (metadata jsonb_path_ops);
CREATE INDEX index_order_items_on_is_active_gin ON order_items USING gin (metadata jsonb_path_ops);
ALTER TABLE ONLY payments ADD CONSTRAINT payments_pkey PRIMARY KEY USING INDEX payments_id_idx;
ALTER TABLE teams ALTER COLUMN updated_at TYPE numeric(10,2) USING updated_at::numeric(10,2);
ANALYZE posts;
DELETE FROM memberships WHERE created_at < now() - interval '90 days';
ALTER TABLE webhooks ALTER COLUMN status SET DEFAULT now();
ALTER TABLE orders ADD CONSTRAINT orders_accounts_fk FOREIGN KEY (account_id) REFERENCES accounts (id) ON DELETE SET NULL NOT VALID;
ALTER TABLE events ENABLE ROW LEVEL SECURITY;
MERGE INTO invoices AS d USING staging_invoices AS s ON d.id = s.id WHEN MATCHED THEN UPDATE SET published_at = s.published_at WHEN NOT MATCHED THEN INSERT (id, published_at) VALUES (s.id, s.published_at);
ALTER TABLE comments ADD CONSTRAINT comments_accounts_fk FOREIGN KEY (account_id) REFERENCES accounts (id) ON DELETE SET NULL NOT VALID;
ALTER TABLE teams ALTER COLUMN status TYPE jsonb USING status::jsonb;
UPDATE events SET status = DEFAULT WHERE id BETWEEN 1 AND 10000 AND status IS NULL;
CREATE POLICY order_items_tenant ON order_items USING (team_id = current_setting('app.team_id')::bigint);
DROP INDEX CONCURRENTLY IF EXISTS index_events_on_currency;
ALTER TABLE order_items ADD CONSTRAINT order_items_accounts_fk FOREIGN KEY (account_id) REFERENCES accounts (id) ON DELETE SET NULL NOT VALID;
CREATE UNIQUE INDEX index_products_on_lower_settings ON products (lower(settings::text));
INSERT INTO audit_log (id, notes) VALUES (1, DEFAULT) ON CONFLICT (id) DO UPDATE SET notes = EXCLUDED.notes RETURNING id;
CREATE TABLE IF NOT EXISTS posts (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  email text,
  account_id bigint REFERENCES accounts (id) ON DELETE CASCADE,
  created_at timestamptz NOT NULL DEFAULT now()
);
LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE;
MERGE INTO sessions AS d USING staging_sessions AS s ON d.id = s.id WHEN MATCHED THEN UPDATE SET notes = s.notes WHEN NOT MATCHED THEN INSERT (id, notes) VALUES (s.id, s.notes);
CREATE UNIQUE INDEX index_api_keys_on_lower_is_active ON api_keys (lower(is_active::text));
ALTER TABLE sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE posts ALTER COLUMN name DROP NOT NULL;
ALTER TABLE events ALTER COLUMN external_id TYPE timestamptz USING external_id::timestamptz;
DROP INDEX CONCURRENTLY IF EXISTS index_tags_on_slug;
ALTER TABLE audit_log VALIDATE CONSTRAINT audit_log_name_check;
CREATE OR REPLACE VIEW active_events AS SELECT * FROM events WHERE deleted_at IS NULL WITH CASCADED CHECK OPTION;
ALTER TABLE comments ADD COLUMN IF NOT EXISTS published_at timestamp NOT NULL DEFAULT now();
CREATE TABLE IF NOT EXISTS audit_log (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  updated_at timestamptz,
  payment_id bigint REFERENCES payments (id) ON DELETE CASCADE,
  created_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO comments (id, is_active) VALUES (1, DEFAULT) ON CONFLICT (id) DO UPDATE SET is_active = EXCLUDED.is_active RETURNING id;
CREATE TABLE IF NOT EXISTS webhooks (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  updated_at timestamptz,
  webhook_id bigint REFERENCES webhooks (id) ON DELETE CASCADE,
  created_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE orders ENABLE ROW LEVEL SECURITY;
COMMENT ON COLUMN addresses.name IS 'The name of the addresse; it''s important.';
ALTER TABLE audit_log ADD CONSTRAINT audit_log_deleted_at_check CHECK (char_length(deleted_at::text) < 1000) NOT VALID;
ALTER TABLE shipments ADD CONSTRAINT shipments_is_active_check CHECK (char_length(is_active::text) < 1000) NOT VALID;
SELECT setval(pg_get_serial_sequence('audit_log', 'id'), coalesce(max(id), 1)) FROM audit_log;
