-- Administrators' sign-in lock (recipients' is on portal_account): a row per configured
-- administrator who has tried, counted before each check (see Store::begin_attempt).
CREATE TABLE admin_lock (
    name TEXT PRIMARY KEY,
    failed BIGINT NOT NULL DEFAULT 0,
    locked_until BIGINT NOT NULL DEFAULT 0
);
-- When a held message was released or rejected: its content is destroyed a retention period
-- after that.
ALTER TABLE quarantine ADD COLUMN decided_at BIGINT;
