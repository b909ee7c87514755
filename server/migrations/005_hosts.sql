-- Host ownership: the files of a recording, an upload and a video live on one host's media
-- volume (DESIGN.md, "Deployment topologies"), but every `onair serve` shares this database.
-- Each row names the node (settings.node_name) that holds its files; background work (crash
-- recovery, compression, retention, expiry, the VOD queue) only touches its own host's rows.
-- '' marks rows made before this migration: each service claims them at start (service.py).
ALTER TABLE recordings ADD COLUMN host text NOT NULL DEFAULT '';
ALTER TABLE uploads ADD COLUMN host text NOT NULL DEFAULT '';
ALTER TABLE videos ADD COLUMN host text NOT NULL DEFAULT '';

CREATE INDEX recordings_host_state_started ON recordings (host, state, started_at);
CREATE INDEX uploads_host_state_updated ON uploads (host, state, updated_at);
CREATE INDEX videos_host_state_created ON videos (host, state, created_at);
