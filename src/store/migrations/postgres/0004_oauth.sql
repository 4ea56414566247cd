-- OAuth 2.0 refresh tokens of destinations, shared by every instance: the current refresh
-- token (rotated at each renewal), the access token it last gave with its expiry (epoch ms),
-- a generation counted up at each renewal (renewals are compare-and-swap on it), and a lease
-- while one instance renews. `seed` is a digest of the refresh token the configuration gave,
-- so a newly configured token (after the admin authorised again) replaces the stored one;
-- `seeds` lists every digest seen, so an instance still configured with an older token never
-- puts that spent token back.
CREATE TABLE oauth_tokens (
    name TEXT PRIMARY KEY,
    seed TEXT NOT NULL,
    seeds TEXT NOT NULL,
    refresh_token TEXT NOT NULL,
    access_token TEXT,
    expires_at BIGINT,
    generation BIGINT NOT NULL DEFAULT 0,
    renewing_until BIGINT
);
