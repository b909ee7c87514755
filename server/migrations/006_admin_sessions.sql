-- Dashboard sessions (/admin): the cookie's token is stored only as a SHA-256 hash, like the
-- stream keys. Kept in PostgreSQL so every server process and every edge host sees the same
-- sessions. A streamer's session is bound to one channel and ends with it.
CREATE TABLE admin_sessions (
    token_hash  bytea PRIMARY KEY,
    role        text NOT NULL CHECK (role IN ('admin', 'streamer')),
    channel     text REFERENCES channels (slug) ON DELETE CASCADE,
    csrf        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    seen_at     timestamptz NOT NULL DEFAULT now(),
    CHECK ((role = 'streamer') = (channel IS NOT NULL))
);

CREATE INDEX admin_sessions_seen ON admin_sessions (seen_at);
