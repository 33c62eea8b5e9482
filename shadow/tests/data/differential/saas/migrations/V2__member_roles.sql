ALTER TABLE members ADD CONSTRAINT members_role_check CHECK (role IN ('owner', 'admin', 'member'));
CREATE INDEX members_user_email_idx ON members (user_email);
