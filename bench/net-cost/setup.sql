DROP TABLE IF EXISTS t, t__duet CASCADE;
CREATE TABLE t (id int PRIMARY KEY, v int NOT NULL, pad text);
INSERT INTO t SELECT g, g, repeat('x', 40) FROM generate_series(1,100000) g;
CREATE TABLE t__duet (id bigint PRIMARY KEY, v int, pad text, __duet_deleted bool NOT NULL DEFAULT false);
INSERT INTO t__duet SELECT id, v, pad FROM t;
VACUUM ANALYZE t; VACUUM ANALYZE t__duet;
CREATE SCHEMA IF NOT EXISTS duet;
