-- credprov backend schema, version 1. Portable SQL: runs unchanged on SQLite
-- and PostgreSQL. Binary values are lower-case hex TEXT; times are seconds
-- since the Unix epoch (BIGINT). K and OPc appear only encrypted (keys_enc).

-- Single-row counters: the next MSIN to allocate from the configured range.
CREATE TABLE imsi_allocator (
    id BIGINT PRIMARY KEY,
    next_msin BIGINT NOT NULL
);
INSERT INTO imsi_allocator (id, next_msin) VALUES (1, 0);

CREATE TABLE admin_tokens (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);

CREATE TABLE provisioners (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    public_key TEXT NOT NULL UNIQUE,
    key_hash TEXT NOT NULL UNIQUE,
    operations TEXT NOT NULL,
    device_prefix TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT,
    revoke_reason TEXT
);

CREATE TABLE manufacturers (
    name TEXT PRIMARY KEY,
    public_key TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE devices (
    device_id TEXT PRIMARY KEY,
    identity_key TEXT NOT NULL,
    box_key TEXT NOT NULL,
    vouched_by TEXT NOT NULL,
    owner_key TEXT,
    owner_counter BIGINT NOT NULL,
    notice TEXT,
    created_at BIGINT NOT NULL
);

CREATE TABLE subscribers (
    imsi TEXT PRIMARY KEY,
    device_id TEXT NOT NULL,
    state TEXT NOT NULL,
    mode TEXT NOT NULL,
    object_id TEXT NOT NULL UNIQUE,
    object_hash TEXT NOT NULL,
    signed_object TEXT NOT NULL,
    provisioner_id TEXT NOT NULL,
    keys_enc TEXT,
    amf TEXT NOT NULL,
    sqn BIGINT NOT NULL,
    epoch BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT,
    activated_at BIGINT,
    deprovisioned_at BIGINT,
    deprovision_reason TEXT,
    receipt TEXT
);
CREATE INDEX subscribers_device ON subscribers (device_id);
CREATE INDEX subscribers_state ON subscribers (state, expires_at);

CREATE TABLE field_pools (
    id TEXT PRIMARY KEY,
    provisioner_id TEXT NOT NULL,
    request_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (provisioner_id, request_id)
);

CREATE TABLE field_authorisations (
    id TEXT PRIMARY KEY,
    pool_id TEXT NOT NULL,
    provisioner_id TEXT NOT NULL,
    imsi TEXT NOT NULL UNIQUE,
    state TEXT NOT NULL,
    signed_object TEXT NOT NULL,
    object_hash TEXT NOT NULL,
    not_after BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX field_authorisations_pool ON field_authorisations (pool_id);

CREATE TABLE attach_challenges (
    id TEXT PRIMARY KEY,
    imsi TEXT NOT NULL,
    rand TEXT NOT NULL,
    xres_hash TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    used BIGINT NOT NULL
);

-- Append-only, hash-chained: hash = SHA-512/256 over the previous hash and
-- this row's canonical encoding. audit_head is locked by every writer, which
-- orders all entries even across backend nodes.
CREATE TABLE audit_log (
    seq BIGINT PRIMARY KEY,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    outcome TEXT NOT NULL,
    detail TEXT NOT NULL,
    remote TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE TABLE audit_head (
    id BIGINT PRIMARY KEY,
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL
);
INSERT INTO audit_head (id, seq, hash) VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');
