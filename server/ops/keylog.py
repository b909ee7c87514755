"""Purge the stream keys nginx-rtmp wrote to nginx's access log before the template gave its
`rtmp {}` block a log of its own. Standard library only: `onair up` imports it, and the
nginx role runs this file as a script on each host (`python3 keylog.py LOG…` prints JSON).
"""

from __future__ import annotations

import gzip
import json
import os
import re
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path

# Where nginx-rtmp logged before the template gave its `rtmp {}` block an access_log: the
# compiled-in default (`nginx -V`: --http-log-path), absolute, so a private prefix did not
# move it. Its rotations (access.log.1, access.log.2.gz …) hold the same lines.
DEFAULT_ACCESS_LOG = Path("/var/log/nginx/access.log")
# nginx-rtmp's built-in `combined` format: `$remote_addr [$time_local] $command "$app"
# "$name" …`, where $name is the stream key as the publisher sent it. HTTP access lines
# have `- $remote_user` after the address, and our onair_rtmp format no quote after the
# command, so neither matches.
KEY_LINE = re.compile(rb'^\S+ \[[^\]]*\] (?:NONE|PLAY|PUBLISH|PLAY\+PUBLISH) "')
PURGED_MARK = ".stream-keys-purged"  # in the prefix: the one-time check has been done


def _kept(data: bytes) -> tuple[bytes, int]:
    lines = data.splitlines(keepends=True)
    kept = [line for line in lines if not KEY_LINE.match(line)]
    return b"".join(kept), len(lines) - len(kept)


def purge_key_lines(path: Path) -> int:
    """Remove nginx-rtmp's key-bearing lines from one log (plain or .gz); how many went.

    A clean log is left untouched. Raises PermissionError when the log cannot be read, or
    holds such lines and cannot be rewritten by this user.
    """
    if path.suffix == ".gz":
        return _purge_gzip(path)
    with path.open("r+b" if os.access(path, os.W_OK) else "rb") as f:
        data = f.read()
        kept, removed = _kept(data)
        if removed == 0:
            return 0
        if not f.writable():
            raise PermissionError(f"cannot rewrite {path}")
        # In place, not a new file: nginx keeps the log open and goes on appending to this
        # inode. What it appended since the read is copied after the kept lines.
        f.seek(0)
        f.write(kept)
        f.seek(len(data))
        tail, more = _kept(f.read())
        f.seek(len(kept))
        f.write(tail)
        f.truncate()
    return removed + more


def _purge_gzip(path: Path) -> int:
    """A compressed rotation nobody writes to: replaced whole, same mode and owner."""
    kept, removed = _kept(gzip.decompress(path.read_bytes()))
    if removed == 0:
        return 0
    st = path.stat()
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(gzip.compress(kept, mtime=0))
        os.chmod(name, st.st_mode & 0o7777)
        if os.geteuid() == 0:
            os.chown(name, st.st_uid, st.st_gid)
        os.replace(name, path)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return removed


def access_logs(log: Path) -> list[Path]:
    """A log and its rotations: access.log, access.log.1, access.log.2.gz …"""
    return sorted(p for p in log.parent.glob(f"{log.name}*") if p.is_file())


def purge_old_key_logs(logs: Iterable[Path]) -> tuple[dict[Path, int], list[Path]]:
    """Purge every readable log in `logs`: (lines removed per file that had some, files that
    hold such lines but could not be rewritten by this user).

    A log this user cannot read is skipped: an nginx started by this user could not have
    opened it either, so it holds no key `onair up` logged.
    """
    removed: dict[Path, int] = {}
    stuck: list[Path] = []
    for path in logs:
        try:
            count = purge_key_lines(path)
        except PermissionError:
            if os.access(path, os.R_OK):
                stuck.append(path)
            continue
        except (OSError, EOFError, gzip.BadGzipFile):
            continue  # gone meanwhile, or a damaged rotation: nothing we can read
        if count:
            removed[path] = count
    return removed, stuck


def purge_notice(prefix: Path, default_log: Path = DEFAULT_ACCESS_LOG) -> str | None:
    """Once per prefix: purge stream keys that older configs let nginx-rtmp log, and say so.

    Returns what to tell the operator (None: nothing found, or checked already). The mark
    is written only once nothing found is left behind, so a run without the rights to
    rewrite /var/log/nginx asks again next time.
    """
    mark = prefix / PURGED_MARK
    if mark.exists():
        return None
    logs = [*access_logs(default_log), *sorted(prefix.glob("*.log*"))]
    removed, stuck = purge_old_key_logs(logs)
    if not stuck:
        mark.write_text("nginx-rtmp's stream-key log lines were purged here\n")
    lines = []
    if removed:
        where = ", ".join(f"{path} ({n})" for path, n in removed.items())
        lines.append(
            f"onair up: removed nginx-rtmp log lines holding stream keys from {where}. "
            "Whoever could read those logs or their backups had the keys: rotate every "
            "channel's key (onair channel rotate-key SLUG, or POST "
            "/api/channels/SLUG/rotate-key) and give OBS the new one."
        )
    if stuck:
        names = ", ".join(str(p) for p in stuck)
        lines.append(
            f"onair up: {names} hold stream keys an older version let nginx-rtmp log, and "
            "this user cannot rewrite them: run `onair up` once as root (or delete the "
            '`PUBLISH "live" "<key>"` lines yourself), then rotate every channel\'s key.'
        )
    return "\n".join(lines) or None


def main(argv: list[str]) -> int:
    """Purge each LOG and its rotations; print {"removed": {path: lines}, "stuck": [path]}."""
    logs = [path for log in argv for path in access_logs(Path(log))]
    removed, stuck = purge_old_key_logs(logs)
    print(
        json.dumps(
            {"removed": {str(p): n for p, n in removed.items()}, "stuck": [str(p) for p in stuck]}
        )
    )
    return 1 if stuck else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
