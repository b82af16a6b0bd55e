-- This node's eventual-mode writes that are committed in this copy but not
-- yet known to be in the stream: written while the stream was out of
-- reach, or after such a write (a node's writes go to the stream in the
-- order it committed them). ts is the write's message timestamp, unique
-- among this node's messages for the database; data is the message, key
-- and results its idempotency key and kept results (its headers), if any.
-- sent is 1 once the message went out without an answer: it may be in the
-- stream already, so before it goes again this copy applies the stream to
-- its end (apply deletes the row when it meets the message) and sends it
-- only if the stream still ends there. A row is deleted once the message's
-- sequence is known (the sequence then goes to _hasvc_ahead) or apply
-- reaches the message.
CREATE TABLE _hasvc_outbox (
	ts      INTEGER PRIMARY KEY,
	data    BLOB NOT NULL,
	key     TEXT,
	results TEXT,
	sent    INTEGER NOT NULL DEFAULT 0
);
