-- Smartsupp Webhooks API events as received (signed; committed before the 200). `conversation`
-- is `<account_id>-<conversation id>` when the event names a conversation, `contact` likewise
-- `<account_id>-<contact id>`; `occurred_at` is the envelope's timestamp (epoch ms).
CREATE TABLE smartsupp_events (
    id BIGSERIAL PRIMARY KEY,
    digest BYTEA NOT NULL UNIQUE,
    event TEXT NOT NULL,
    conversation TEXT,
    contact TEXT,
    raw BYTEA NOT NULL,
    received_at BIGINT NOT NULL,
    occurred_at BIGINT,
    client_ip TEXT
);
CREATE INDEX smartsupp_events_conversation ON smartsupp_events (conversation) WHERE conversation IS NOT NULL;
CREATE INDEX smartsupp_events_contact ON smartsupp_events (contact) WHERE contact IS NOT NULL;
CREATE INDEX smartsupp_events_received ON smartsupp_events (received_at);

-- Conversations waiting for assembly: due at `due_at` (a settle time after their closing
-- event), reserved by `lease_until` while one is assembled. `generation` counts the events
-- that scheduled it: an assembly finishing an older generation leaves the row due again.
CREATE TABLE smartsupp_assemblies (
    key TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    conversation_id TEXT NOT NULL,
    due_at BIGINT NOT NULL,
    lease_until BIGINT,
    generation BIGINT NOT NULL DEFAULT 1,
    attempts BIGINT NOT NULL DEFAULT 0,
    last_error TEXT
);
CREATE INDEX smartsupp_assemblies_due ON smartsupp_assemblies (due_at);

-- Where `deskbridge import smartsupp` stands (JSON: range, search cursor, counts), so an
-- interrupted import resumes.
CREATE TABLE smartsupp_imports (
    name TEXT PRIMARY KEY,
    cursor TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
