-- Owner commands issued for delivery over a device link (reconfigure,
-- diagnose): each takes the device's next owner counter. Kept so that a
-- retried request (same device and request_id) gets the same command back
-- instead of burning another counter, and as the record of what was issued.
CREATE TABLE owner_commands (
    device_id TEXT NOT NULL REFERENCES devices (device_id),
    request_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    counter BIGINT NOT NULL,
    issued_by TEXT NOT NULL,
    signed_object TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (device_id, request_id)
);
