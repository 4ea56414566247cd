-- What the admin dashboard lists and searches by, read from the body at ingest.
ALTER TABLE conversations ADD COLUMN kind TEXT NOT NULL DEFAULT 'chat';
ALTER TABLE conversations ADD COLUMN visitor_name TEXT;
ALTER TABLE conversations ADD COLUMN visitor_email TEXT;

-- Conversations stored before this migration: the same fields from their bodies. A body that
-- jsonb cannot hold (a \u0000 escape) keeps the defaults rather than failing the upgrade.
DO $$
DECLARE
    r RECORD;
    body jsonb;
BEGIN
    FOR r IN SELECT id, raw FROM conversations LOOP
        BEGIN
            body := convert_from(r.raw, 'UTF8')::jsonb;
            UPDATE conversations SET
                kind = CASE
                    WHEN body -> 'channel' -> 'isOffline' = 'true'::jsonb THEN 'offline'
                    WHEN body -> 'channel' -> 'isMissed' = 'true'::jsonb THEN 'missed'
                    ELSE 'chat' END,
                visitor_name = NULLIF(trim(CASE WHEN jsonb_typeof(body -> 'visitor') = 'object'
                                                THEN body -> 'visitor' ->> 'name' END), ''),
                visitor_email = lower(NULLIF(trim(CASE WHEN jsonb_typeof(body -> 'visitor') = 'object'
                                                       THEN body -> 'visitor' ->> 'email' END), ''))
            WHERE id = r.id;
        EXCEPTION WHEN others THEN
            NULL;
        END;
    END LOOP;
END $$;

-- The dashboard counts hooks by time, and retention selects by it; dead letters are listed
-- newest first (a partial index: deliveries on their usual way to done never enter it).
CREATE INDEX conversations_received ON conversations (received_at);
CREATE INDEX deliveries_dead ON deliveries (updated_at) WHERE state = 'dead';
