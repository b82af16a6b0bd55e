-- Write requests sent with an idempotency key, and what they answered:
-- a request sent again with the same key is answered from here instead of
-- running twice. A row is written in the same SQLite transaction as the
-- write it records, on every copy (the key and the results travel in the
-- write's message headers), so any node can answer a retry. seq is the
-- write's stream sequence, results its results in hasvc's exact JSON
-- (NULL when they were too large to keep), at the time it was recorded
-- (Unix seconds, this node's clock): rows older than a day are deleted.
-- Rows are appended in the order they are recorded, so the oldest come
-- first by rowid, and deleting them needs no index on at (one B-tree
-- fewer to write for every keyed request).
CREATE TABLE _hasvc_requests (
	key     TEXT NOT NULL UNIQUE,
	seq     INTEGER NOT NULL,
	results TEXT,
	at      INTEGER NOT NULL
);
