-- Webhooks (DESIGN.md "Webhooks and embeds"): receivers an admin registered, and the outbox of
-- deliveries to them. The signing secret is kept sealed (AES-GCM under a key derived from
-- ONAIR_SECRET_KEY, bound to the URL): the deliverer must read it back to sign.
CREATE TABLE webhooks (
    id             bigserial PRIMARY KEY,
    url            text NOT NULL,
    events         text[] NOT NULL,
    channels       text[],  -- NULL: every channel
    secret_sealed  bytea NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);

-- One row per event and subscribed webhook, written in the transaction of the event's own
-- write where there is one. Sent in id order per webhook; any host's deliverer may send one,
-- holding the webhook's row lock while it does.
CREATE TABLE webhook_deliveries (
    id               bigserial PRIMARY KEY,
    webhook_id       bigint NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event            text NOT NULL,
    channel          text NOT NULL,
    body             jsonb NOT NULL,
    state            text NOT NULL DEFAULT 'pending'
                     CHECK (state IN ('pending', 'delivered', 'failed')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_status      integer,
    last_error       text,
    redelivery_of    bigint,
    created_at       timestamptz NOT NULL DEFAULT now(),
    delivered_at     timestamptz
);
-- Each webhook's queue head, found at every deliverer poll.
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (webhook_id, id)
    WHERE state = 'pending';
-- The delivery log, newest first.
CREATE INDEX webhook_deliveries_log ON webhook_deliveries (webhook_id, id DESC);
