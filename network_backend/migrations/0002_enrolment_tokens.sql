-- One-time enrolment tokens: an admin (or provisioner manager) issues one for
-- a technician, whose tool then registers its own public key with it.
-- Only the token's hash is stored.
CREATE TABLE enrolment_tokens (
    id TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    operations TEXT NOT NULL,
    device_prefix TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT,
    provisioner_id TEXT
);
