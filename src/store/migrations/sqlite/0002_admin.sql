-- What the admin dashboard lists and searches by, read from the body at ingest.
ALTER TABLE conversations ADD COLUMN kind TEXT NOT NULL DEFAULT 'chat';
ALTER TABLE conversations ADD COLUMN visitor_name TEXT;
ALTER TABLE conversations ADD COLUMN visitor_email TEXT;

-- Conversations stored before this migration: the same fields from their bodies.
UPDATE conversations SET
    kind = CASE
        WHEN json_extract(CAST(raw AS TEXT), '$.channel.isOffline') = 1 THEN 'offline'
        WHEN json_extract(CAST(raw AS TEXT), '$.channel.isMissed') = 1 THEN 'missed'
        ELSE 'chat' END,
    visitor_name = CASE WHEN json_type(CAST(raw AS TEXT), '$.visitor') = 'object' THEN
        NULLIF(trim(json_extract(CAST(raw AS TEXT), '$.visitor.name')), '') END,
    visitor_email = CASE WHEN json_type(CAST(raw AS TEXT), '$.visitor') = 'object' THEN
        lower(NULLIF(trim(json_extract(CAST(raw AS TEXT), '$.visitor.email')), '')) END
WHERE json_valid(CAST(raw AS TEXT));

-- The dashboard counts hooks by time, and retention selects by it; dead letters are listed
-- newest first (a partial index: deliveries on their usual way to done never enter it).
CREATE INDEX conversations_received ON conversations (received_at);
-- Search by visitor reads this narrow index instead of rows that carry whole bodies. (The kind
-- filter has no index: one cost ingest more than it saved; see docs/PERFORMANCE.md.)
CREATE INDEX conversations_visitor ON conversations (visitor_email, visitor_name);
CREATE INDEX deliveries_dead ON deliveries (updated_at) WHERE state = 'dead';
