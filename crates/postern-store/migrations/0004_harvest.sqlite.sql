-- Certificates offered by partners' valid signatures (harvested), waiting for approval or
-- approved; one row per partner entry and certificate.
CREATE TABLE harvested_key (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    partner TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    subject TEXT NOT NULL,
    addresses TEXT NOT NULL,
    certificate BLOB NOT NULL,
    first_seen BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',
    UNIQUE (partner, fingerprint)
);
CREATE INDEX harvested_key_state ON harvested_key (state, partner);
