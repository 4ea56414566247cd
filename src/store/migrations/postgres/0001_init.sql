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
-- the meaning of each column). Unlike SQLite, a claim sets only lease_until (not indexed), so
-- claiming creates no dead entries in the queue index; key and version are copied from the
-- conversation so the in-order check needs no join.
CREATE TABLE deliveries (
    id BIGSERIAL PRIMARY KEY,
    conversation_id BIGINT NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    version INTEGER NOT NULL,
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
CREATE INDEX deliveries_versions ON deliveries (key, destination, version);
-- A queue table churns: vacuum and analyze it early so the claim's plan and index stay lean.
ALTER TABLE deliveries SET (autovacuum_vacuum_scale_factor = 0.01,
                            autovacuum_analyze_scale_factor = 0.01,
                            autovacuum_vacuum_cost_delay = 0);

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
