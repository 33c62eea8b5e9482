-- migrate:up transaction:false
VACUUM (ANALYZE) posts;
ALTER TABLE posts SET (autovacuum_vacuum_scale_factor = 0.02);

-- migrate:down
