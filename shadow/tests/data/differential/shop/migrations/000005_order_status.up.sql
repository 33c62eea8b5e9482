ALTER TABLE orders ADD CONSTRAINT orders_status_check
    CHECK (status IN ('new', 'paid', 'shipped', 'cancelled')) NOT VALID;
ALTER TABLE orders VALIDATE CONSTRAINT orders_status_check;
UPDATE orders SET total = 0 WHERE total IS NULL;
ALTER TABLE orders ALTER COLUMN total SET NOT NULL;
INSERT INTO orders (user_id, status, total) SELECT id, 'new', 0 FROM users WHERE id <= 10;
