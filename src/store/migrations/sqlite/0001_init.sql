-- Conversations as received: one row per version of a key.
CREATE TABLE conversations (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL,
    version INTEGER NOT NULL,
    digest BLOB NOT NULL,
    raw BLOB NOT NULL,
    received_at INTEGER NOT NULL,
    client_ip TEXT,
    UNIQUE (key, version),
    UNIQUE (key, digest)
);

-- One delivery per routed destination and conversation version.
-- state: pending | done | dead. A claimed delivery is pending with lease_until set and
-- next_attempt_at = lease_until, so an expired lease makes it due again by itself.
CREATE TABLE deliveries (
    id INTEGER PRIMARY KEY,
    conversation_id INTEGER NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    destination TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    -- times the delivery was claimed: more claims than recorded attempts means an attempt
    -- whose outcome is unknown (a crash, an expired lease)
    claims INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    lease_until INTEGER,
    last_error TEXT,
    result TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX deliveries_due ON deliveries (destination, next_attempt_at) WHERE state = 'pending';
CREATE INDEX deliveries_conversation ON deliveries (conversation_id);

-- Every attempt, for the operator.
CREATE TABLE attempts (
    id INTEGER PRIMARY KEY,
    delivery_id INTEGER NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    attempt INTEGER NOT NULL,
    started_at INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL,
    status INTEGER,
    excerpt TEXT,
    error TEXT
);
CREATE INDEX attempts_delivery ON attempts (delivery_id);
