\set aid random(1, 1000)
SELECT abalance FROM bench_accounts WHERE aid = :aid;
