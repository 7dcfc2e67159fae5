-- The kind of reason a message was held for (postern_core::HoldCode), beside the sentence
-- in `reason`; rows held before have none.
ALTER TABLE quarantine ADD COLUMN reason_code TEXT;
