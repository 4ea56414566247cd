-- What the admin dashboard lists and searches by, read from the body at ingest.
ALTER TABLE conversations ADD COLUMN kind TEXT NOT NULL DEFAULT 'chat';
ALTER TABLE conversations ADD COLUMN visitor_name TEXT;
ALTER TABLE conversations ADD COLUMN visitor_email TEXT;

-- Conversations stored before this migration: the same fields from their bodies.
UPDATE conversations c SET
    kind = CASE
        WHEN b.body -> 'channel' -> 'isOffline' = 'true'::jsonb THEN 'offline'
        WHEN b.body -> 'channel' -> 'isMissed' = 'true'::jsonb THEN 'missed'
        ELSE 'chat' END,
    visitor_name = NULLIF(trim(b.body -> 'visitor' ->> 'name'), ''),
    visitor_email = lower(NULLIF(trim(b.body -> 'visitor' ->> 'email'), ''))
FROM (SELECT id, convert_from(raw, 'UTF8')::jsonb AS body FROM conversations) b
WHERE b.id = c.id;

-- The dashboard counts hooks by time, and retention selects by it; dead letters are listed
-- newest first (a partial index: deliveries on their usual way to done never enter it).
CREATE INDEX conversations_received ON conversations (received_at);
CREATE INDEX deliveries_dead ON deliveries (updated_at) WHERE state = 'dead';
