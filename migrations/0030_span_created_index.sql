-- bridge:no-transaction
-- Spans by arrival: `bridge top` reads the last minute of spans (tool and model calls, export
-- lag) and `bridge trace tail` follows new spans with a cursor on created_at, so neither reads
-- more than the recent window, whatever the size of the ledger. Built concurrently: the
-- ledger stays writable while the index is built.
CREATE INDEX CONCURRENTLY IF NOT EXISTS idx_spans_created_at ON bridge.spans (created_at);
