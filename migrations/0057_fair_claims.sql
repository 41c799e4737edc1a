-- Fair claims (issue 21, `limits.fairness.group`): when each group (e.g. workspace) was last
-- served by a claim. A claim takes the groups with pending tasks longest since their last turn
-- first (never served: first of all), so one group's backlog cannot starve the others.
-- The index that serves fair claims on the task table is opt-in:
-- migrations/fairness/0058_fair_claim_index.sql.
CREATE TABLE IF NOT EXISTS bridge.fair_groups (
    group_key       text PRIMARY KEY,
    last_claimed_at timestamptz NOT NULL
);
