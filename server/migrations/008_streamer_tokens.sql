-- Streamer logins: a per-channel token with role `streamer` signs in to /admin and manages
-- that channel only (its key, moderators, bans, tokens, recordings, videos).
ALTER TABLE channel_tokens DROP CONSTRAINT channel_tokens_role_check;
ALTER TABLE channel_tokens ADD CONSTRAINT channel_tokens_role_check
    CHECK (role IN ('moderator', 'uploader', 'streamer'));
ALTER TABLE admin_sessions ADD COLUMN token_id bigint REFERENCES channel_tokens (id) ON DELETE CASCADE;
