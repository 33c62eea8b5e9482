\set id random(1, 100000)
WITH m(c1,c2,c3) AS (UPDATE t SET v = v + 1 WHERE id BETWEEN (:id % 99000) + 1 AND (:id % 99000) + 1000 RETURNING t.id, t.v, t.pad)
INSERT INTO t__duet AS s (id, v, pad, __duet_deleted) SELECT c1::bigint, c2, c3, false FROM m ORDER BY c1 ON CONFLICT (id) DO UPDATE SET v = EXCLUDED.v, pad = EXCLUDED.pad, __duet_deleted = false;
