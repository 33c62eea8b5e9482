INSERT INTO users (email, name, created_at)
    SELECT 'user' || g || '@example.com', 'User ' || g, now() - g * interval '1 hour'
      FROM generate_series(1, 3000) g;
INSERT INTO products (sku, title, price)
    SELECT 'SKU-' || g, 'Product ' || g, (g % 90) + 0.99 FROM generate_series(1, 500) g;
INSERT INTO orders (user_id, status, total, placed_at)
    SELECT 1 + g % 3000, 'new', CASE WHEN g % 7 = 0 THEN NULL ELSE g % 400 END, now() - g * interval '1 minute'
      FROM generate_series(1, 6000) g;
