-- Chat: messages (ids are time-ordered hex, so "C" collation sorts them by time),
-- bans by user id or by keyed IP hash, and per-channel moderator tokens (stored hashed).
CREATE TABLE chat_messages (
    id          text COLLATE "C" PRIMARY KEY,
    channel     text NOT NULL REFERENCES channels (slug) ON DELETE CASCADE,
    user_id     text NOT NULL,
    user_name   text NOT NULL,
    user_role   text NOT NULL,
    ip_hash     text NOT NULL,  -- HMAC of the address with the server secret, never the address
    body        text NOT NULL CHECK (length(body) BETWEEN 1 AND 500),
    created_at  timestamptz NOT NULL,
    deleted_at  timestamptz
);
CREATE INDEX chat_messages_channel_id ON chat_messages (channel, id DESC);

CREATE TABLE chat_bans (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    channel       text NOT NULL REFERENCES channels (slug) ON DELETE CASCADE,
    user_id       text,
    ip_hash       text,
    moderator_id  bigint,
    created_at    timestamptz NOT NULL DEFAULT now(),
    expires_at    timestamptz,  -- NULL: for good
    CHECK (user_id IS NOT NULL OR ip_hash IS NOT NULL)
);
CREATE INDEX chat_bans_channel ON chat_bans (channel);

CREATE TABLE chat_moderators (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    channel     text NOT NULL REFERENCES channels (slug) ON DELETE CASCADE,
    name        text NOT NULL,
    token_hash  bytea NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX chat_moderators_channel ON chat_moderators (channel);
