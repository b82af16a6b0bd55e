-- Run by psql -v ON_ERROR_STOP=1 -f: a schema, rows, a transaction, and
-- the queries whose output the test checks.
CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, price REAL, tag TEXT UNIQUE);
CREATE INDEX items_price ON items (price);
INSERT INTO items (id, name, price, tag) VALUES (1, 'apple', 0.5, 'a'), (2, 'pear', 0.75, 'p');
BEGIN;
INSERT INTO items (id, name, price) VALUES (3, 'plum', 1.25);
UPDATE items SET price = price * 2 WHERE id = 1;
COMMIT;
BEGIN;
DELETE FROM items;
ROLLBACK;
SELECT id, name, price FROM items ORDER BY id;
SELECT count(*) AS n, sum(price) AS total FROM items;
SELECT id, name, price FROM items \gdesc
\dt
\d items
\l
\dn
