SET lock_timeout = '5s';
ALTER TABLE orders ALTER COLUMN placed_at TYPE timestamptz;
CREATE INDEX users_created_at_idx ON users (created_at);
ALTER TABLE users ALTER COLUMN created_at TYPE timestamptz;
