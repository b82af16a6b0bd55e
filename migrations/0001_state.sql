-- hasvc's bookkeeping inside every database. Tenants' SQL can neither read
-- nor write tables whose names start with _hasvc (the authorizer refuses
-- it), and changes to them are never captured or replicated.

-- applied_seq is the last stream sequence this copy of the database has
-- applied. It is updated in the same SQLite transaction as the data that
-- message carried, so a crash can neither skip nor repeat a message.
CREATE TABLE _hasvc_state (
	id          INTEGER PRIMARY KEY CHECK (id = 1),
	applied_seq INTEGER NOT NULL
);
INSERT INTO _hasvc_state (id, applied_seq) VALUES (1, 0);
