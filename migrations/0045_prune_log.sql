-- Retention (`bridge prune --older-than`): every prune leaves a row here, written before it
-- deletes anything and counted up in the same transaction as each batch it deletes. The newest
-- cutoff is the ledger's horizon: `bridge verify` does not look at executions or traces older
-- than it (their spans may be gone), and says so in its report.
CREATE TABLE IF NOT EXISTS bridge.prunes (
    id                  bigserial PRIMARY KEY,
    cutoff              timestamptz NOT NULL,
    include_undelivered boolean NOT NULL DEFAULT false,
    started_at          timestamptz NOT NULL DEFAULT now(),
    finished_at         timestamptz,
    traces              bigint NOT NULL DEFAULT 0,
    spans               bigint NOT NULL DEFAULT 0
);
