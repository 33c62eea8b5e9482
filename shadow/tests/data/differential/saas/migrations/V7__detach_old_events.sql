ALTER TABLE events DETACH PARTITION events_2024;
TRUNCATE accounts_archive;
DROP INDEX members_user_email_idx;
ALTER TABLE accounts_archive SET UNLOGGED;
