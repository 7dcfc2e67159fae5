-- Direct delivery tracking (the sending side): one row per recipient of a Direct message we
-- handed to a HISP, until its notifications arrive or its deadline passes. Message-IDs and
-- addresses only, never content.
CREATE TABLE direct_tracking (
    message_id TEXT NOT NULL,
    recipient TEXT NOT NULL,
    sender TEXT NOT NULL,
    reliable BIGINT NOT NULL DEFAULT 0,
    sent_at BIGINT NOT NULL,
    deadline BIGINT NOT NULL,
    processed_at BIGINT,
    dispatched_at BIGINT,
    failed_at BIGINT,
    state TEXT NOT NULL DEFAULT 'pending',
    PRIMARY KEY (message_id, recipient)
);
CREATE INDEX direct_tracking_due ON direct_tracking (state, deadline);
