ALTER TABLE users ADD COLUMN is_admin boolean NOT NULL DEFAULT false;
-- Who invited whom; the explicit DEFAULT NULL makes PostgreSQL validate the key.
ALTER TABLE users ADD COLUMN referrer_id bigint DEFAULT NULL REFERENCES users (id);
ALTER TABLE users ALTER COLUMN name TYPE varchar(200);
