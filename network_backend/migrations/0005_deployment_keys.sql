-- The keys every node serving this database must hold: the operator's
-- current signing key (public, hex) and the data key's id (DataKey::id, a
-- keyed hash that does not reveal the key). The first init, serve or local
-- command records them; a node holding other keys refuses to start instead
-- of storing K/OPc no other node can read, or signing with a key devices do
-- not know. `operator rotate` moves operator_sign_key on (the node that
-- rotated finds the recorded key among its retired ones).
CREATE TABLE deployment_keys (
    id BIGINT PRIMARY KEY,
    operator_sign_key TEXT NOT NULL,
    data_key_id TEXT NOT NULL,
    recorded_at BIGINT NOT NULL
);
