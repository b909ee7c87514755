"""Upgrading purges the stream keys older configs let nginx-rtmp write to nginx's access log.

The key-bearing lines are made by a real nginx-rtmp: an `rtmp {}` block whose access_log
names a file but no format is exactly what the module wrote to the compiled-in default log
before the template gave it a format of its own.
"""

from __future__ import annotations

import asyncio
import gzip
import secrets
import shutil
from pathlib import Path

import pytest

from server.ops import keylog, nginx
from tests.conftest import free_port

pytestmark = [pytest.mark.media]

HTTP_LINE = (
    b'127.0.0.1 - - [03/Dec/2026:10:00:00 +0000] "GET /healthz HTTP/1.1" 200 15 "-" "curl"\n'
)
SAFE_RTMP_LINE = b"127.0.0.1 [03/Dec/2026:10:00:01 +0000] PUBLISH 52345 4081 (20s)\n"


async def old_style_log(folder: Path, key: str) -> bytes:
    """Publish with `key` through nginx-rtmp logging in its default format; the log's bytes."""
    port = free_port()
    prefix = folder / "nginx"
    prefix.mkdir()
    log = folder / "rtmp-default.log"
    conf = prefix / "nginx.conf"
    user = nginx.worker_user()
    conf.write_text(
        f"load_module {nginx.RTMP_MODULE};\n"
        f"{f'user {user};' if user else ''}\n"
        f"pid {prefix}/nginx.pid;\nerror_log {prefix}/error.log warn;\nevents {{}}\n"
        f"rtmp {{ access_log {log}; server {{ listen 127.0.0.1:{port}; "
        "application live { live on; } } }\n"
    )
    server = await nginx.start_nginx(nginx.NginxLayout(prefix))
    try:
        for _ in range(100):
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                break
            except OSError:
                await asyncio.sleep(0.05)
        publisher = await asyncio.create_subprocess_exec(
            "ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "error",
            "-re", "-f", "lavfi", "-i", "testsrc2=size=160x120:rate=15", "-t", "1",
            "-c:v", "libx264", "-preset", "ultrafast", "-f", "flv",
            f"rtmp://127.0.0.1:{port}/live/{key}",
        )  # fmt: skip
        assert await asyncio.wait_for(publisher.wait(), 30) == 0
    finally:
        await nginx.stop_nginx(server)
    data = log.read_bytes()
    assert f'PUBLISH "live" "{key}"'.encode() in data, data  # the leak as it was
    return data


def text_of(path: Path) -> bytes:
    raw = path.read_bytes()
    return gzip.decompress(raw) if path.suffix == ".gz" else raw


async def test_the_purge_removes_key_lines_from_logs_and_rotations(tmp_path: Path) -> None:
    key = secrets.token_hex(16)
    leaked = await old_style_log(tmp_path, key)
    logs = tmp_path / "var-log-nginx"
    logs.mkdir()
    current = logs / "access.log"
    current.write_bytes(HTTP_LINE + leaked + SAFE_RTMP_LINE + HTTP_LINE)
    current.chmod(0o640)
    inode = current.stat().st_ino
    (logs / "access.log.1").write_bytes(leaked + HTTP_LINE)
    (logs / "access.log.2.gz").write_bytes(gzip.compress(HTTP_LINE + leaked))
    clean = logs / "access.log.3.gz"
    clean.write_bytes(gzip.compress(HTTP_LINE))
    untouched = clean.stat()
    (logs / "error.log").write_bytes(leaked)  # not an access log: not ours to edit

    found = keylog.access_logs(current)
    assert [p.name for p in found] == [
        "access.log", "access.log.1", "access.log.2.gz", "access.log.3.gz"
    ]  # fmt: skip
    removed, stuck = keylog.purge_old_key_logs(found)
    assert stuck == []
    assert set(removed) == {current, logs / "access.log.1", logs / "access.log.2.gz"}
    for path in found:
        assert key.encode() not in text_of(path), path
    assert text_of(current) == HTTP_LINE + SAFE_RTMP_LINE + HTTP_LINE
    assert text_of(logs / "access.log.1") == HTTP_LINE
    assert text_of(logs / "access.log.2.gz") == HTTP_LINE
    assert current.stat().st_mode & 0o777 == 0o640
    assert current.stat().st_ino == inode  # rewritten in place: nginx goes on logging to it
    assert clean.stat().st_mtime_ns == untouched.st_mtime_ns  # nothing to remove: not rewritten
    assert key.encode() in (logs / "error.log").read_bytes()
    assert keylog.purge_old_key_logs(found) == ({}, [])  # idempotent


async def test_onair_up_purges_once_and_tells_the_operator_to_rotate_keys(
    tmp_path: Path,
) -> None:
    key = secrets.token_hex(16)
    leaked = await old_style_log(tmp_path, key)
    default = tmp_path / "var-log-nginx" / "access.log"
    default.parent.mkdir()
    default.write_bytes(leaked + HTTP_LINE)
    prefix = tmp_path / "data-nginx"
    prefix.mkdir()
    (prefix / "nginx-error.log").write_bytes(leaked)

    notice = keylog.purge_notice(prefix, default)
    assert notice is not None and "rotate-key" in notice and str(default) in notice, notice
    assert key not in notice
    assert key.encode() not in default.read_bytes()
    assert key.encode() not in (prefix / "nginx-error.log").read_bytes()
    assert default.read_bytes() == HTTP_LINE
    shutil.copy(tmp_path / "rtmp-default.log", default)
    assert keylog.purge_notice(prefix, default) is None  # one time: checked already
