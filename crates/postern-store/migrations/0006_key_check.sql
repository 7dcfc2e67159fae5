-- Key check values of the key files that protect data in this database (portal.key,
-- quarantine.key): a replaced key file is refused at start instead of failing later.
CREATE TABLE key_check (
    name TEXT PRIMARY KEY,
    kcv TEXT NOT NULL
);
