ALTER TABLE ONLY subscriptions ADD CONSTRAINT subscriptions_pkey PRIMARY KEY USING INDEX subscriptions_id_idx;
ALTER TABLE ONLY audit_log ADD CONSTRAINT audit_log_pkey PRIMARY KEY USING INDEX audit_log_id_idx;
COMMENT ON COLUMN shipments.email IS 'The email of the shipment; it''s important.';
CREATE TRIGGER addresses_touch BEFORE UPDATE ON addresses FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION touch_updated_at();
CREATE TABLE IF NOT EXISTS tags (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  deleted_at timestamptz,
  audit_lo_id bigint REFERENCES audit_log (id) ON DELETE CASCADE,
  created_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE comments VALIDATE CONSTRAINT comments_metadata_check;
ALTER TABLE addresses ADD CONSTRAINT addresses_name_check CHECK (char_length(name::text) < 1000) NOT VALID;
ALTER TABLE events ALTER COLUMN published_at TYPE smallint USING published_at::smallint;
CREATE INDEX CONCURRENTLY IF NOT EXISTS index_api_keys_on_published_at ON api_keys USING btree (published_at) WHERE deleted_at IS NULL;
ANALYZE sessions;
ANALYZE products;
ALTER TABLE api_keys ALTER COLUMN status DROP NOT NULL;
GRANT SELECT, INSERT, UPDATE ON TABLE sessions TO app_user;
CREATE UNIQUE INDEX index_subscriptions_on_lower_slug ON subscriptions (lower(slug::text));
CREATE OR REPLACE VIEW active_products AS SELECT * FROM products WHERE deleted_at IS NULL WITH CASCADED CHECK OPTION;
ALTER TABLE addresses ADD CONSTRAINT addresses_score_check CHECK (char_length(score::text) < 1000) NOT VALID;
ALTER TABLE sessions ALTER COLUMN name SET DEFAULT now();
GRANT SELECT, INSERT, UPDATE ON TABLE posts TO app_user;
ALTER TABLE shipments ADD COLUMN email_v2 text;
MERGE INTO order_items AS d USING staging_order_items AS s ON d.id = s.id WHEN MATCHED THEN UPDATE SET name = s.name WHEN NOT MATCHED THEN INSERT (id, name) VALUES (s.id, s.name);
SELECT setval(pg_get_serial_sequence('addresses', 'id'), coalesce(max(id), 1)) FROM addresses;
ALTER TABLE order_items ADD COLUMN IF NOT EXISTS notes text NOT NULL DEFAULT '';
ALTER TABLE comments ALTER COLUMN updated_at TYPE timestamptz USING updated_at::timestamptz;
CREATE OR REPLACE VIEW active_users AS SELECT * FROM users WHERE deleted_at IS NULL WITH CASCADED CHECK OPTION;
ALTER TABLE memberships ENABLE ROW LEVEL SECURITY;
CREATE INDEX index_order_items_on_status_gin ON order_items USING gin (metadata jsonb_path_ops);
ALTER SEQUENCE orders_id_seq RESTART WITH 1000;
ALTER TABLE payments ADD CONSTRAINT payments_sessions_fk FOREIGN KEY (session_id) REFERENCES sessions (id) ON DELETE SET NULL NOT VALID;
ALTER TABLE accounts ADD COLUMN metadata_v2 jsonb;
ALTER TABLE accounts ALTER COLUMN metadata SET NOT NULL;
CREATE INDEX CONCURRENTLY IF NOT EXISTS index_order_items_on_currency ON order_items USING btree (currency) WHERE deleted_at IS NULL;
GRANT SELECT, INSERT, UPDATE ON TABLE audit_log TO app_user;
CREATE OR REPLACE VIEW active_posts AS SELECT * FROM posts WHERE deleted_at IS NULL WITH CASCADED CHECK OPTION;
DROP INDEX CONCURRENTLY IF EXISTS index_subscriptions_on_is_active;
ALTER TABLE invoices ADD COLUMN IF NOT EXISTS email text NOT NULL DEFAULT '';
CREATE OR REPLACE VIEW active_payments AS SELECT * FROM payments WHERE deleted_at IS NULL WITH CASCADED CHECK OPTION;
ALTER TABLE invoices ADD COLUMN notes_v2 text;
CREATE INDEX index_orders_on_notes_gin ON orders USING gin (metadata jsonb_path_ops);
ALTER TABLE ONLY subscriptions ADD CONSTRAINT subscriptions_pkey PRIMARY KEY USING INDEX subscriptions_id_idx;
ALTER TABLE sessions ADD CONSTRAINT sessions_name_check CHECK (char_length(name::text) < 1000) NOT VALID;
CREATE POLICY memberships_tenant ON memberships USING (team_id = current_setting('app.team_id')::bigint);
DELETE FROM sessions WHERE created_at < now() - interval '90 days';
ALTER TABLE comments ALTER COLUMN created_at SET DEFAULT now();
ALTER TABLE comments ADD CONSTRAINT comments_notes_check CHECK (char_length(notes::text) < 1000) NOT VALID;
LOCK TABLE webhooks IN SHARE ROW EXCLUSIVE MODE;
CREATE OR REPLACE VIEW active_audit_log AS SELECT * FROM audit_log WHERE deleted_at IS NULL WITH CASCADED CHECK OPTION;
ALTER TABLE teams ALTER COLUMN metadata SET DEFAULT now();
ALTER TABLE tags ALTER COLUMN settings SET NOT NULL;
ALTER TABLE ONLY audit_log ADD CONSTRAINT audit_log_pkey PRIMARY KEY USING INDEX audit_log_id_idx;
DELETE FROM webhooks WHERE created_at < now() - interval '90 days';
CREATE POLICY payments_tenant ON payments USING (team_id = current_setting('app.team_id')::bigint);
ALTER TABLE products ADD CONSTRAINT products_invoices_fk FOREIGN KEY (invoice_id) REFERENCES invoices (id) ON DELETE SET NULL NOT VALID;
ALTER TABLE webhooks ALTER COLUMN deleted_at TYPE timestamptz USING deleted_at::timestamptz;
CREATE UNIQUE INDEX index_orders_on_lower_rank ON orders (lower(rank::text));
CREATE TABLE IF NOT EXISTS invoices (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  updated_at timestamptz,
  product_id bigint REFERENCES products (id) ON DELETE CASCADE,
  created_at timestamptz NOT NULL DEFAULT now()
);
