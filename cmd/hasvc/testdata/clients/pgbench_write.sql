\set aid random(1, 1000)
BEGIN;
UPDATE bench_accounts SET abalance = abalance + 1 WHERE aid = :aid;
INSERT INTO bench_history (aid, delta) VALUES (:aid, 1);
END;
