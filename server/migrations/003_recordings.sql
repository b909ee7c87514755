-- Recordings: one row per live session kept under MEDIA_DIR/recordings/<channel>/<id>/.
-- State machine (enforced by the trigger below, so no code path can skip a step):
--   recording → finalizing → compressing → ready
--   recording/finalizing → failed        (nothing playable came out)
--   compressing/ready/failed → deleted   (by age, by water mark, or by an admin; never in progress)
CREATE TABLE recordings (
    id              text COLLATE "C" PRIMARY KEY CHECK (id ~ '^[0-9a-f]{16,32}$'),
    channel         text NOT NULL REFERENCES channels (slug) ON DELETE CASCADE,
    state           text NOT NULL DEFAULT 'recording' CHECK (
                        state IN ('recording', 'finalizing', 'compressing', 'ready',
                                  'failed', 'deleted')),
    started_at      timestamptz NOT NULL DEFAULT now(),
    ended_at        timestamptz,          -- publish_done (or the crash recovery that ended it)
    finalized_at    timestamptz,
    compressed_at   timestamptz,
    deleted_at      timestamptz,
    duration_s      double precision,
    bytes           bigint NOT NULL DEFAULT 0 CHECK (bytes >= 0),
    original_bytes  bigint,               -- the stream copy's size, kept after compression
    codec           text,                 -- video codec of the file served now (h264, hevc)
    error           text,                 -- why it failed, or why compression was skipped
    deleted_reason  text                  -- age, water, admin, channel
);
CREATE INDEX recordings_channel_started ON recordings (channel, started_at DESC);
CREATE INDEX recordings_state_started ON recordings (state, started_at);

CREATE FUNCTION recordings_transition() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.state = OLD.state THEN
        RETURN NEW;
    END IF;
    IF NOT (OLD.state, NEW.state) IN (
        ('recording', 'finalizing'), ('recording', 'failed'),
        ('finalizing', 'compressing'), ('finalizing', 'ready'), ('finalizing', 'failed'),
        ('compressing', 'ready'), ('compressing', 'deleted'),
        ('ready', 'deleted'), ('failed', 'deleted')
    ) THEN
        RAISE EXCEPTION 'recording % cannot go from % to %', OLD.id, OLD.state, NEW.state
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER recordings_transition BEFORE UPDATE OF state ON recordings
    FOR EACH ROW EXECUTE FUNCTION recordings_transition();
