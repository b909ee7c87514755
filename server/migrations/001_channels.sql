-- Channels: the public slug, and the stream key stored only as a SHA-256 hash.
CREATE TABLE channels (
    slug        text PRIMARY KEY CHECK (slug ~ '^[a-z0-9][a-z0-9-]{0,39}$'),
    title       text NOT NULL CHECK (length(title) <= 200),
    key_hash    bytea NOT NULL UNIQUE,
    disabled    boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now()
);
