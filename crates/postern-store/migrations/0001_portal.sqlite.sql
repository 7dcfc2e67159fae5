-- Portal messages: one row per recipient. Subject and message are AES-256-GCM under a key of
-- their own (wrapped_key, under the master key); revoking or expiring sets all three to NULL.
CREATE TABLE portal_message (
    id TEXT PRIMARY KEY,
    recipient TEXT NOT NULL,
    sender TEXT NOT NULL,
    sender_name TEXT NOT NULL,
    reference TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    wrapped_key BLOB,
    subject BLOB,
    body BLOB,
    size BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    state TEXT NOT NULL,
    opened_at BIGINT,
    read_receipt BIGINT NOT NULL,
    failed_codes BIGINT NOT NULL DEFAULT 0,
    locked_until BIGINT NOT NULL DEFAULT 0,
    queue_id TEXT NOT NULL
);
CREATE INDEX portal_message_recipient ON portal_message (recipient, state);
CREATE INDEX portal_message_expiry ON portal_message (state, expires_at);
CREATE TABLE portal_code (
    id TEXT PRIMARY KEY,
    message_id TEXT NOT NULL,
    code_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX portal_code_message ON portal_code (message_id, created_at);
CREATE TABLE portal_account (
    address TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    failed BIGINT NOT NULL DEFAULT 0,
    locked_until BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE portal_session (
    id_hash TEXT PRIMARY KEY,
    address TEXT,
    message_id TEXT,
    proof TEXT,
    csrf TEXT NOT NULL,
    admin BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    last_seen BIGINT NOT NULL
);
-- Append-only: each row carries the hash of the one before it.
CREATE TABLE postern_audit (
    seq BIGINT PRIMARY KEY,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    object TEXT NOT NULL,
    client TEXT NOT NULL,
    detail TEXT NOT NULL,
    prev TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX postern_audit_object ON postern_audit (object);
