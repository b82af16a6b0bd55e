-- Sequences of this node's own eventual-mode writes that are committed in
-- this copy beyond applied_seq, because other nodes' messages came between
-- them in the stream. Apply replays their rows in stream order but not their
-- schema changes, which already ran here. Rows at or below applied_seq are
-- deleted as apply passes them.
CREATE TABLE _hasvc_ahead (
	seq INTEGER PRIMARY KEY
);
