-- Simulcast destinations (DESIGN.md "Simulcast"): where a channel's live stream is relayed.
-- The platform's stream key is kept sealed (AES-GCM under a key derived from ONAIR_SECRET_KEY)
-- with its last four characters beside it for the masked form; the state columns are what
-- the relay on the channel's media host last reported, so every host's API shows them.
CREATE TABLE destinations (
    id           bigserial PRIMARY KEY,
    channel      text NOT NULL REFERENCES channels (slug) ON DELETE CASCADE,
    name         text NOT NULL,
    server       text NOT NULL,
    key_sealed   bytea NOT NULL,
    key_hint     text NOT NULL,
    enabled      boolean NOT NULL DEFAULT true,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    state        text NOT NULL DEFAULT 'idle'
                 CHECK (state IN ('idle', 'connecting', 'live', 'failing')),
    state_since  timestamptz NOT NULL DEFAULT now(),
    last_error   text,
    bytes_sent   bigint NOT NULL DEFAULT 0,
    UNIQUE (channel, name)
);
