INSERT INTO order_items (order_id, product_id, quantity)
    SELECT o.id, 1 + (o.id + p * 100) % 500, 1 + p FROM orders o, generate_series(1, 3) p;
