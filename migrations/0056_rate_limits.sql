-- Fleet-wide model rate limits (issue 21): requests and tokens per minute as GCRA buckets
-- (a "theoretical arrival time" per bucket) on the database's clock. A model's limit is split
-- over `stripe` rows (each with 1/n of the rate) so that no single row serialises the fleet;
-- a caller takes its stripe and tries the next one when it is ahead of schedule.
-- `blocked_until` is set on every stripe of a model when the provider answers 429 with a reset
-- time, so every worker waits, not only the one that got the 429.
CREATE TABLE IF NOT EXISTS bridge.rate_buckets (
    model         text NOT NULL,
    stripe        integer NOT NULL,
    request_tat   timestamptz NOT NULL DEFAULT '-infinity',
    token_tat     timestamptz NOT NULL DEFAULT '-infinity',
    blocked_until timestamptz NOT NULL DEFAULT '-infinity',
    PRIMARY KEY (model, stripe)
);

-- Takes one request of `tokens` estimated tokens from stripe `p_stripe` of `p_model`: 0 when
-- granted (both buckets advanced), else the seconds to wait (nothing taken). Intervals are
-- seconds per request / per token for this stripe (0: not limited); `p_burst` is how far
-- ahead of schedule a stripe may run, in seconds.
CREATE OR REPLACE FUNCTION bridge.take_rate(p_model text, p_stripe integer, p_request_interval float8,
                                            p_token_interval float8, p_tokens float8, p_burst float8)
RETURNS float8 LANGUAGE plpgsql AS $$
DECLARE
    b bridge.rate_buckets%ROWTYPE;
    t timestamptz := clock_timestamp();
    req_ahead float8;
    tok_ahead float8;
BEGIN
    SELECT * INTO b FROM bridge.rate_buckets WHERE model = p_model AND stripe = p_stripe FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO bridge.rate_buckets (model, stripe) VALUES (p_model, p_stripe) ON CONFLICT DO NOTHING;
        SELECT * INTO b FROM bridge.rate_buckets WHERE model = p_model AND stripe = p_stripe FOR UPDATE;
    END IF;
    IF b.blocked_until > t THEN
        RETURN extract(epoch FROM b.blocked_until - t);
    END IF;
    req_ahead := extract(epoch FROM greatest(b.request_tat, t) - t);
    tok_ahead := extract(epoch FROM greatest(b.token_tat, t) - t);
    IF p_request_interval > 0 AND req_ahead > p_burst THEN
        RETURN req_ahead - p_burst;
    END IF;
    IF p_token_interval > 0 AND tok_ahead > p_burst THEN
        RETURN tok_ahead - p_burst;
    END IF;
    UPDATE bridge.rate_buckets SET
        request_tat = CASE WHEN p_request_interval > 0
                           THEN greatest(request_tat, t) + p_request_interval * interval '1 second' ELSE request_tat END,
        token_tat = CASE WHEN p_token_interval > 0
                         THEN greatest(token_tat, t) + p_token_interval * p_tokens * interval '1 second' ELSE token_tat END
    WHERE model = p_model AND stripe = p_stripe;
    RETURN 0;
END
$$;
