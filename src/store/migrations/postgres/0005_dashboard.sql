-- What the admin dashboard shows at a glance (see the SQLite migration for each column).
ALTER TABLE conversations ADD COLUMN began_at BIGINT;
ALTER TABLE conversations ADD COLUMN ended_at BIGINT;

-- Conversations stored before this migration: the times from their bodies. A body that jsonb
-- cannot hold (a \u0000 escape) keeps nulls rather than failing the upgrade.
DO $$
DECLARE
    r RECORD;
    body jsonb;
BEGIN
    FOR r IN SELECT id, raw FROM conversations LOOP
        BEGIN
            body := convert_from(r.raw, 'UTF8')::jsonb;
            UPDATE conversations SET
                began_at = CASE WHEN jsonb_typeof(body -> 'beginAt') = 'number'
                                THEN (body ->> 'beginAt')::numeric::bigint END,
                ended_at = CASE WHEN jsonb_typeof(body -> 'endAt') = 'number'
                                THEN (body ->> 'endAt')::numeric::bigint END
            WHERE id = r.id;
        EXCEPTION WHEN others THEN
            NULL;
        END;
    END LOOP;
END $$;

ALTER TABLE deliveries ADD COLUMN last_request TEXT;

CREATE TABLE replays (
    id BIGSERIAL PRIMARY KEY,
    delivery_id BIGINT NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    replayed_at BIGINT NOT NULL,
    replayed_by TEXT NOT NULL,
    was TEXT NOT NULL
);
CREATE INDEX replays_delivery ON replays (delivery_id);
