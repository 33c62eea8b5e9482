ALTER TABLE users DROP COLUMN referrer_id;
ALTER TABLE users DROP COLUMN is_admin;
