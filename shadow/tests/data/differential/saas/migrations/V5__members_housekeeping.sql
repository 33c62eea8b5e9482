ALTER TABLE members SET ACCESS METHOD heap;
ALTER TABLE members SET (fillfactor = 90);
COMMENT ON TABLE accounts IS 'tenants';
ALTER TABLE members ADD COLUMN invited_by uuid DEFAULT NULL REFERENCES accounts (id);
ALTER TABLE members ALTER COLUMN role TYPE varchar(20);
