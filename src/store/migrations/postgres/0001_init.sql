-- Conversations as received: one row per version of a key. The unique constraints decide
-- duplicates and versions race-free across instances.
CREATE TABLE conversations (
    id BIGSERIAL PRIMARY KEY,
    key TEXT NOT NULL,
    version INTEGER NOT NULL,
    digest BYTEA NOT NULL,
    raw BYTEA NOT NULL,
    received_at BIGINT NOT NULL,
    client_ip TEXT,
    UNIQUE (key, version),
    UNIQUE (key, digest)
);

-- One delivery per routed destination and conversation version (see the SQLite migration for
-- the meaning of each column).
CREATE TABLE deliveries (
    id BIGSERIAL PRIMARY KEY,
    conversation_id BIGINT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    destination TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    claims INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    lease_until BIGINT,
    last_error TEXT,
    result TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX deliveries_due ON deliveries (destination, next_attempt_at) WHERE state = 'pending';
CREATE INDEX deliveries_conversation ON deliveries (conversation_id);

CREATE TABLE attempts (
    id BIGSERIAL PRIMARY KEY,
    delivery_id BIGINT NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    attempt INTEGER NOT NULL,
    started_at BIGINT NOT NULL,
    duration_ms BIGINT NOT NULL,
    status INTEGER,
    excerpt TEXT,
    error TEXT
);
CREATE INDEX attempts_delivery ON attempts (delivery_id);
