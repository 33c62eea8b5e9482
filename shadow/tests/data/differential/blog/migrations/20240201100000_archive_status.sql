-- migrate:up
ALTER TYPE post_status ADD VALUE IF NOT EXISTS 'archived';
ALTER TABLE comments ADD COLUMN edited_at timestamptz;
CREATE MATERIALIZED VIEW post_stats AS
    SELECT p.id, count(c.id) AS comments
      FROM posts p
      LEFT JOIN comments c ON c.post_id = p.id
     GROUP BY p.id;
CREATE UNIQUE INDEX post_stats_id_idx ON post_stats (id);

-- migrate:down
DROP MATERIALIZED VIEW post_stats;
ALTER TABLE comments DROP COLUMN edited_at;
