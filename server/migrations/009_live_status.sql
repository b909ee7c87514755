-- The dashboard's live panel, shared by every host (DESIGN.md "Admin dashboard"): the media
-- host that runs a channel's ladder writes what it sees every few seconds, and any host's
-- dashboard reads it. A row older than a few seconds means that host stopped reporting.
CREATE TABLE live_status (
    channel     text PRIMARY KEY REFERENCES channels (slug) ON DELETE CASCADE,
    host        text NOT NULL,
    started_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    status      jsonb NOT NULL
);

-- Viewers per minute (the most seen in that minute), for the last hour's chart.
CREATE TABLE viewer_minutes (
    channel  text NOT NULL REFERENCES channels (slug) ON DELETE CASCADE,
    minute   timestamptz NOT NULL,
    viewers  integer NOT NULL CHECK (viewers >= 0),
    PRIMARY KEY (channel, minute)
);

-- Chat messages per minute are counted from the messages themselves.
CREATE INDEX chat_messages_channel_created ON chat_messages (channel, created_at);
