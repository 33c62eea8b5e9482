-- migrate:up
CREATE DOMAIN slug AS text CHECK (VALUE ~ '^[a-z0-9-]+$');
ALTER TABLE posts ADD COLUMN slug slug;
UPDATE posts SET slug = 'post-' || id WHERE slug IS NULL;
INSERT INTO comments (post_id, body) VALUES (1, E'Thanks!\nIt''s
\\o/ great');
ALTER TABLE posts ALTER COLUMN title SET NOT NULL;

-- migrate:down
ALTER TABLE posts ALTER COLUMN title DROP NOT NULL;
ALTER TABLE posts DROP COLUMN slug;
DROP DOMAIN slug;
