ALTER TABLE accounts ADD COLUMN settings jsonb NOT NULL DEFAULT '{}';
ALTER TABLE accounts ADD COLUMN owner_email text;
CREATE FUNCTION accounts_touch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.plan := lower(NEW.plan);
    RETURN NEW;
END
$$;
CREATE TRIGGER accounts_touch BEFORE UPDATE ON accounts FOR EACH ROW EXECUTE FUNCTION accounts_touch();
ALTER TABLE accounts ENABLE ROW LEVEL SECURITY;
CREATE POLICY accounts_visible ON accounts USING (true);
