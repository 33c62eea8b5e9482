SET TIME ZONE 'Europe/Berlin';
ALTER TABLE accounts ALTER COLUMN created_at TYPE timestamp;
CREATE TABLE accounts_archive AS SELECT * FROM accounts WHERE plan = 'free';
RESET TIME ZONE;
