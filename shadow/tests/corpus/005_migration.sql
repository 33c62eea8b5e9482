ALTER TABLE payments ENABLE ROW LEVEL SECURITY;
ALTER TABLE addresses RENAME COLUMN score TO score_old;
ALTER TABLE users ENABLE ROW LEVEL SECURITY;
ALTER TABLE orders ADD CONSTRAINT orders_score_check CHECK (char_length(score::text) < 1000) NOT VALID;
ALTER TABLE posts VALIDATE CONSTRAINT posts_settings_check;
CREATE INDEX CONCURRENTLY IF NOT EXISTS index_orders_on_amount_cents ON orders USING btree (amount_cents) WHERE deleted_at IS NULL;
GRANT SELECT, INSERT, UPDATE ON TABLE audit_log TO app_user;
ALTER TABLE accounts VALIDATE CONSTRAINT accounts_is_active_check;
ALTER TABLE sessions ADD CONSTRAINT sessions_subscriptions_fk FOREIGN KEY (subscription_id) REFERENCES subscriptions (id) ON DELETE SET NULL NOT VALID;
ALTER TABLE addresses VALIDATE CONSTRAINT addresses_updated_at_check;
DROP INDEX CONCURRENTLY IF EXISTS index_tags_on_score;
GRANT SELECT, INSERT, UPDATE ON TABLE products TO app_user;
COMMENT ON COLUMN order_items.is_active IS 'The is_active of the order_item; it''s important.';
CREATE TRIGGER teams_touch BEFORE UPDATE ON teams FOR EACH ROW WHEN (OLD.* IS DISTINCT FROM NEW.*) EXECUTE FUNCTION touch_updated_at();
ALTER TABLE posts ADD CONSTRAINT posts_memberships_fk FOREIGN KEY (membership_id) REFERENCES memberships (id) ON DELETE SET NULL NOT VALID;
DROP INDEX CONCURRENTLY IF EXISTS index_users_on_email;
ALTER TABLE memberships ENABLE ROW LEVEL SECURITY;
SELECT setval(pg_get_serial_sequence('order_items', 'id'), coalesce(max(id), 1)) FROM order_items;
ALTER TABLE posts ADD COLUMN IF NOT EXISTS status text NOT NULL DEFAULT '';
ALTER TABLE accounts ALTER COLUMN currency TYPE text USING currency::text;
ALTER TABLE accounts ADD COLUMN slug_v2 varchar(100);
MERGE INTO orders AS d USING staging_orders AS s ON d.id = s.id WHEN MATCHED THEN UPDATE SET amount_cents = s.amount_cents WHEN NOT MATCHED THEN INSERT (id, amount_cents) VALUES (s.id, s.amount_cents);
ALTER TABLE audit_log SET (autovacuum_vacuum_scale_factor = 0.02, fillfactor = 90);
INSERT INTO shipments (id, metadata) VALUES (1, DEFAULT) ON CONFLICT (id) DO UPDATE SET metadata = EXCLUDED.metadata RETURNING id;
LOCK TABLE memberships IN SHARE ROW EXCLUSIVE MODE;
GRANT SELECT, INSERT, UPDATE ON TABLE products TO app_user;
ALTER TABLE posts ENABLE ROW LEVEL SECURITY;
ALTER TABLE payments VALIDATE CONSTRAINT payments_metadata_check;
CREATE OR REPLACE VIEW active_events AS SELECT * FROM events WHERE deleted_at IS NULL WITH CASCADED CHECK OPTION;
ALTER TABLE memberships ALTER COLUMN published_at SET DEFAULT now();
UPDATE events SET published_at = DEFAULT WHERE id BETWEEN 1 AND 10000 AND published_at IS NULL;
ALTER TABLE ONLY tags ADD CONSTRAINT tags_pkey PRIMARY KEY USING INDEX tags_id_idx;
ALTER TABLE orders ALTER COLUMN notes SET NOT NULL;
GRANT SELECT, INSERT, UPDATE ON TABLE audit_log TO app_user;
DELETE FROM users WHERE created_at < now() - interval '90 days';
CREATE OR REPLACE VIEW active_shipments AS SELECT * FROM shipments WHERE deleted_at IS NULL WITH CASCADED CHECK OPTION;
ALTER TABLE accounts ADD COLUMN IF NOT EXISTS currency char(3) NOT NULL DEFAULT '';
ALTER TABLE users SET (autovacuum_vacuum_scale_factor = 0.02, fillfactor = 90);
CREATE INDEX index_audit_log_on_amount_cents_gin ON audit_log USING gin (metadata jsonb_path_ops);
CREATE OR REPLACE VIEW active_teams AS SELECT * FROM teams WHERE deleted_at IS NULL WITH CASCADED CHECK OPTION;
CREATE TABLE IF NOT EXISTS shipments (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  rank smallint,
  invoice_id bigint REFERENCES invoices (id) ON DELETE CASCADE,
  created_at timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE sessions ALTER COLUMN currency DROP NOT NULL;
CREATE TABLE IF NOT EXISTS invoices (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  metadata jsonb,
  event_id bigint REFERENCES events (id) ON DELETE CASCADE,
  created_at timestamptz NOT NULL DEFAULT now()
);
ALTER SEQUENCE accounts_id_seq RESTART WITH 1000;
ALTER TABLE shipments VALIDATE CONSTRAINT shipments_slug_check;
ALTER TABLE users ADD COLUMN name_v2 varchar(255);
ALTER TABLE tags ALTER COLUMN created_at SET NOT NULL;
ALTER TABLE order_items ADD CONSTRAINT order_items_email_check CHECK (char_length(email::text) < 1000) NOT VALID;
CREATE POLICY teams_tenant ON teams USING (team_id = current_setting('app.team_id')::bigint);
ALTER TABLE shipments ALTER COLUMN created_at DROP NOT NULL;
CREATE TABLE IF NOT EXISTS audit_log (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name varchar(255),
  api_key_id bigint REFERENCES api_keys (id) ON DELETE CASCADE,
  created_at timestamptz NOT NULL DEFAULT now()
);
ALTER SEQUENCE tags_id_seq RESTART WITH 1000;
CREATE INDEX index_payments_on_deleted_at_gin ON payments USING gin (metadata jsonb_path_ops);
ALTER TABLE accounts ALTER COLUMN amount_cents SET NOT NULL;
UPDATE events SET published_at = DEFAULT WHERE id BETWEEN 1 AND 10000 AND published_at IS NULL;
