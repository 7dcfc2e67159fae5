-- The gateway's quarantine (moved here from its own SQLite file): the message is AES-256-GCM
-- under the quarantine key, with the ID as associated data. Its events go to postern_audit.
CREATE TABLE quarantine (
    id TEXT PRIMARY KEY,
    created_at BIGINT NOT NULL,
    origin TEXT NOT NULL,
    sender TEXT,
    recipients TEXT NOT NULL,
    reason TEXT NOT NULL,
    verdict TEXT,
    size BIGINT NOT NULL,
    nonce BLOB NOT NULL,
    message BLOB NOT NULL,
    state TEXT NOT NULL DEFAULT 'held'
);
CREATE INDEX quarantine_state ON quarantine (state, created_at);
