-- Uploads (tus 1.0) and the videos made from them.
--
-- uploads: one row per tus upload, bytes under MEDIA_DIR/uploads/<id>/data while it lasts.
--   receiving → done        (every byte arrived and ffprobe accepted it: a video row is queued)
--   receiving → rejected    (ffprobe refused it; the bytes are deleted)
--   receiving → expired     (incomplete for too long; the bytes are deleted)
--   receiving → terminated  (tus DELETE; the bytes are deleted)
-- The received offset is the data file's size on disk; `received` mirrors it for listings.
CREATE TABLE uploads (
    id          text COLLATE "C" PRIMARY KEY CHECK (id ~ '^[0-9a-f]{32}$'),
    channel     text NOT NULL REFERENCES channels (slug) ON DELETE CASCADE,
    state       text NOT NULL DEFAULT 'receiving' CHECK (
                    state IN ('receiving', 'done', 'rejected', 'expired', 'terminated')),
    length      bigint NOT NULL CHECK (length > 0),
    received    bigint NOT NULL DEFAULT 0 CHECK (received >= 0 AND received <= length),
    filename    text,                 -- from Upload-Metadata, for people only (never a path)
    title       text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),  -- last byte received: expiry counts from it
    error       text,                 -- why it was rejected
    video_id    text
);
CREATE INDEX uploads_channel_created ON uploads (channel, created_at DESC);
CREATE INDEX uploads_state_updated ON uploads (state, updated_at);

-- videos: the VOD ladder under MEDIA_DIR/videos/<channel>/<id>/ (master.m3u8, one folder
-- per rendition, poster.jpg); the source stays in the upload's folder until it is ready.
--   queued → transcoding → ready
--   transcoding → queued    (the server stopped mid-job: it starts again)
--   queued/transcoding → failed
--   queued/transcoding/ready/failed → deleted
CREATE TABLE videos (
    id          text COLLATE "C" PRIMARY KEY CHECK (id ~ '^[0-9a-f]{16,32}$'),
    channel     text NOT NULL REFERENCES channels (slug) ON DELETE CASCADE,
    upload_id   text NOT NULL,
    state       text NOT NULL DEFAULT 'queued' CHECK (
                    state IN ('queued', 'transcoding', 'ready', 'failed', 'deleted')),
    title       text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    started_at  timestamptz,
    ready_at    timestamptz,
    deleted_at  timestamptz,
    progress    double precision NOT NULL DEFAULT 0 CHECK (progress >= 0 AND progress <= 1),
    duration_s  double precision,
    width       integer,
    height      integer,
    source_bytes bigint,
    bytes       bigint NOT NULL DEFAULT 0 CHECK (bytes >= 0),  -- the ladder on disk
    renditions  text[] NOT NULL DEFAULT '{}',
    error       text
);
CREATE INDEX videos_channel_created ON videos (channel, created_at DESC);
CREATE INDEX videos_state_created ON videos (state, created_at);

CREATE FUNCTION uploads_transition() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.state = OLD.state THEN
        RETURN NEW;
    END IF;
    IF NOT (OLD.state = 'receiving'
            AND NEW.state IN ('done', 'rejected', 'expired', 'terminated')) THEN
        RAISE EXCEPTION 'upload % cannot go from % to %', OLD.id, OLD.state, NEW.state
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER uploads_transition BEFORE UPDATE OF state ON uploads
    FOR EACH ROW EXECUTE FUNCTION uploads_transition();

CREATE FUNCTION videos_transition() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.state = OLD.state THEN
        RETURN NEW;
    END IF;
    IF NOT (OLD.state, NEW.state) IN (
        ('queued', 'transcoding'), ('transcoding', 'queued'), ('transcoding', 'ready'),
        ('queued', 'failed'), ('transcoding', 'failed'),
        ('queued', 'deleted'), ('transcoding', 'deleted'), ('ready', 'deleted'),
        ('failed', 'deleted')
    ) THEN
        RAISE EXCEPTION 'video % cannot go from % to %', OLD.id, OLD.state, NEW.state
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER videos_transition BEFORE UPDATE OF state ON videos
    FOR EACH ROW EXECUTE FUNCTION videos_transition();

-- One upload token per channel (admin-made, shown once, kept as SHA-256 like stream keys).
CREATE TABLE upload_tokens (
    channel     text PRIMARY KEY REFERENCES channels (slug) ON DELETE CASCADE,
    token_hash  bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
