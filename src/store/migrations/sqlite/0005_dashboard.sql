-- What the admin dashboard shows at a glance.
-- When the chat began and ended (epoch ms, the body's beginAt and endAt), for the lists.
ALTER TABLE conversations ADD COLUMN began_at INTEGER;
ALTER TABLE conversations ADD COLUMN ended_at INTEGER;
UPDATE conversations SET
    began_at = CASE WHEN json_type(CAST(raw AS TEXT), '$.beginAt') IN ('integer', 'real')
                    THEN CAST(json_extract(CAST(raw AS TEXT), '$.beginAt') AS INTEGER) END,
    ended_at = CASE WHEN json_type(CAST(raw AS TEXT), '$.endAt') IN ('integer', 'real')
                    THEN CAST(json_extract(CAST(raw AS TEXT), '$.endAt') AS INTEGER) END
WHERE json_valid(CAST(raw AS TEXT));

-- The request(s) the last attempt of a delivery sent, secrets masked; kept while the delivery
-- is not done, so an admin sees what failed exactly as it was sent.
ALTER TABLE deliveries ADD COLUMN last_request TEXT;

-- Every replay of a delivery: when, by whom (`admin`: the dashboard or its API; `cli`: the
-- deliveries retry command) and the state it left (`done` or `dead`).
CREATE TABLE replays (
    id INTEGER PRIMARY KEY,
    delivery_id INTEGER NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    replayed_at INTEGER NOT NULL,
    replayed_by TEXT NOT NULL,
    was TEXT NOT NULL
);
CREATE INDEX replays_delivery ON replays (delivery_id);
