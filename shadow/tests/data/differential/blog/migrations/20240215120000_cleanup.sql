-- migrate:up
REFRESH MATERIALIZED VIEW CONCURRENTLY post_stats;
ALTER TABLE comments RENAME COLUMN body TO content;
ALTER TABLE posts DROP COLUMN legacy_id;
ALTER TABLE authors ALTER COLUMN handle TYPE text COLLATE "C";
SELECT count(*) FROM posts WHERE status = 'draft';

-- migrate:down
ALTER TABLE comments RENAME COLUMN content TO body;
