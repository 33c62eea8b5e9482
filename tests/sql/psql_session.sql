-- A psql session run twice, straight to PostgreSQL and through duet; everything psql prints (stdout
-- and stderr, including error texts, SQLSTATEs and notices) must be identical.
\set VERBOSITY verbose
CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, price numeric(10,2));
INSERT INTO items SELECT i, 'item ' || i, i * 1.5 FROM generate_series(1, 50) i;
-- several statements in one Query message
SELECT count(*), sum(price) FROM items \; SELECT name FROM items WHERE id IN (1, 2, 3) ORDER BY id \; SELECT 'multi' AS tag;
BEGIN;
UPDATE items SET price = price * 2 WHERE id <= 3 RETURNING id, price;
SAVEPOINT s1;
INSERT INTO items VALUES (1, 'duplicate', 0);
ROLLBACK TO SAVEPOINT s1;
COMMIT;
-- errors outside a transaction: the session goes on
SELECT * FROM no_such_table;
SELECT 1/0;
INSERT INTO items VALUES (100, NULL, 1);
SELECT nme FROM items;
SELECT id, name, price FROM items ORDER BY id DESC LIMIT 3;
-- an error in the middle of a multi-statement Query: the rest is skipped
SELECT 1 AS first \; SELECT * FROM no_such_table \; SELECT 2 AS never;
-- an error inside a transaction block: aborted until ROLLBACK
BEGIN;
SELECT 1/0;
SELECT 'ignored while aborted';
ROLLBACK;
DO $$ BEGIN RAISE NOTICE 'notice from %', 'plpgsql'; RAISE WARNING 'a warning'; END $$;
PREPARE by_id(int) AS SELECT name, price FROM items WHERE id = $1;
EXECUTE by_id(7);
EXECUTE by_id(3);
DEALLOCATE by_id;
SELECT E'tab\there', 'quote''s', NULL::text IS NULL AS is_null, '{1,2,3}'::int[] AS arr, '2024-01-02'::date;
\set ON_ERROR_STOP on
SELECT 'before the stop';
SELECT broken syntax here;
SELECT 'never reached';
