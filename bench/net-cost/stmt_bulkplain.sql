\set id random(1, 100000)
UPDATE t SET v = v + 1 WHERE id BETWEEN (:id % 99000) + 1 AND (:id % 99000) + 1000;
