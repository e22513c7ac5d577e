-- The core-network outbox (decision 0011): one row per change a configured
-- core connector (osmo-hlr) must mirror, written in the same transaction as
-- the change itself (activation: 'upsert', deprovisioning: 'remove'; a
-- reconciliation repair writes either). Rows hold no key material: delivery
-- reads and decrypts the subscriber's keys_enc at that moment.
--
-- seq orders rows totally (from core_outbox_seq, locked like the IMSI
-- allocator); a row is delivered only when no older pending row of its IMSI
-- is left, so each IMSI sees its changes in order. A worker claims a row by
-- a conditional UPDATE of lease_owner/lease_until (portable: no SKIP LOCKED
-- needed); a lease that runs out lets any node take the row over.
CREATE TABLE core_outbox_seq (
    id BIGINT PRIMARY KEY,
    next_seq BIGINT NOT NULL
);
INSERT INTO core_outbox_seq (id, next_seq) VALUES (1, 1);

CREATE TABLE core_outbox (
    seq BIGINT PRIMARY KEY,
    imsi TEXT NOT NULL,
    op TEXT NOT NULL,
    reason TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    attempts BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    lease_owner TEXT,
    lease_until BIGINT,
    done_at BIGINT,
    outcome TEXT,
    last_error TEXT
);
CREATE INDEX core_outbox_pending ON core_outbox (done_at, next_attempt_at);
CREATE INDEX core_outbox_imsi ON core_outbox (imsi, seq);
