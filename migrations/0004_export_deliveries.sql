-- Export bookkeeping: the ledger (bridge.spans) works as an outbox. Every exporter that runs
-- registers itself in bridge.exporters, and records per span whether it was delivered or
-- rejected (with the server's message), so a span is never silently lost and `bridge verify`
-- can reconcile what was sent. All tables are new.
CREATE TABLE IF NOT EXISTS bridge.exporters (
    name          text PRIMARY KEY,          -- 'openai', 'otlp', 'file'
    target        text,                      -- endpoint URL or file path (no credentials)
    registered_at timestamptz NOT NULL DEFAULT now(),
    last_seen_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE IF NOT EXISTS bridge.span_deliveries (
    exporter     text NOT NULL REFERENCES bridge.exporters (name) ON DELETE CASCADE,
    span_id      text NOT NULL REFERENCES bridge.spans (span_id) ON DELETE CASCADE,
    trace_id     text NOT NULL,
    status       text NOT NULL CHECK (status IN ('delivered', 'rejected')),
    attempts     integer NOT NULL DEFAULT 1,
    delivered_at timestamptz NOT NULL DEFAULT now(),
    error        text,
    PRIMARY KEY (exporter, span_id)
);

CREATE INDEX IF NOT EXISTS idx_span_deliveries_trace ON bridge.span_deliveries (trace_id);

-- Trace objects are sent too (the OpenAI ingest endpoint takes them beside the spans).
CREATE TABLE IF NOT EXISTS bridge.trace_deliveries (
    exporter     text NOT NULL REFERENCES bridge.exporters (name) ON DELETE CASCADE,
    trace_id     text NOT NULL REFERENCES bridge.traces (trace_id) ON DELETE CASCADE,
    status       text NOT NULL CHECK (status IN ('delivered', 'rejected')),
    attempts     integer NOT NULL DEFAULT 1,
    delivered_at timestamptz NOT NULL DEFAULT now(),
    error        text,
    PRIMARY KEY (exporter, trace_id)
);
