-- The sender's own withdrawal link (sent to the sender only), stored hashed like the recipient's.
ALTER TABLE portal_message ADD COLUMN revoke_hash TEXT;
CREATE INDEX portal_message_revoke ON portal_message (revoke_hash);
