-- migrate:up transaction:false
CREATE INDEX CONCURRENTLY IF NOT EXISTS posts_author_id_idx ON posts (author_id);
CREATE INDEX CONCURRENTLY IF NOT EXISTS comments_post_id_idx ON comments (post_id);

-- migrate:down transaction:false
DROP INDEX CONCURRENTLY IF EXISTS comments_post_id_idx;
DROP INDEX CONCURRENTLY IF EXISTS posts_author_id_idx;
