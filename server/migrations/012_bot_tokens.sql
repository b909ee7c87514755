-- Bots: a per-channel token with role `bot` posts chat messages through the API, shown with
-- role `bot` in the room and its history.
ALTER TABLE channel_tokens DROP CONSTRAINT channel_tokens_role_check;
ALTER TABLE channel_tokens ADD CONSTRAINT channel_tokens_role_check
    CHECK (role IN ('moderator', 'uploader', 'streamer', 'bot'));
