-- Where each recording sits on the wall clock: [[media seconds, Unix seconds], ...], one pair
-- per captured part (transcoder/recordings/clock.py), so its chat replays in sync. NULL for
-- recordings made before it was kept: their replay starts at started_at.
ALTER TABLE recordings ADD COLUMN clock jsonb;
