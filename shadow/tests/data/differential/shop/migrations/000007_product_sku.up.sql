DROP VIEW order_summary;
ALTER TABLE products ALTER COLUMN sku TYPE varchar(64);
CREATE UNIQUE INDEX products_sku_key ON products (sku);
ALTER TABLE products ADD CONSTRAINT products_sku_unique UNIQUE USING INDEX products_sku_key;
ALTER TABLE orders ALTER COLUMN user_id TYPE bigint;
ALTER TABLE order_items ALTER COLUMN quantity TYPE bigint;
ALTER TABLE products ALTER COLUMN price TYPE numeric(14,2);
