INSERT INTO authors (handle, display_name) SELECT 'author' || g, 'Author ' || g FROM generate_series(1, 400) g;
INSERT INTO posts (author_id, title, body, status, legacy_id, published_at)
    SELECT 1 + g % 400, 'Post ' || g, repeat('text ', 20), CASE WHEN g % 3 = 0 THEN 'draft' ELSE 'published' END::post_status, g, now()
      FROM generate_series(1, 4000) g;
INSERT INTO comments (post_id, body) SELECT 1 + g % 4000, 'comment ' || g FROM generate_series(1, 8000) g;
