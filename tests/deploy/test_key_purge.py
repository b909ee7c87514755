"""The nginx role purges the stream keys older configs let nginx-rtmp log, once, and says so."""

from __future__ import annotations

import gzip
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import open_tempdir
from tests.deploy.helpers import ROOT, run, tail

# nginx-rtmp's default format as it wrote it (tests/stack/test_key_log_purge.py makes these
# with a real nginx-rtmp and checks the same pattern against them).
KEY = "0f3c9a7d5e2b41c8a6d9e0f1b2c3d4e5"
LEAKED = (
    f'127.0.0.1 [03/Dec/2026:12:52:20 +0000] PUBLISH "live" "{KEY}" "" - 31072 529 "" '
    '"FMLE/3.0 (compatible; Lavf59.27" (1s)\n'
    f'10.0.0.9 [03/Dec/2026:12:53:00 +0000] PLAY "live" "{KEY}" "start=0" - 410 9120 "" "" (4s)\n'
).encode()
HTTP = b'127.0.0.1 - - [03/Dec/2026:12:52:21 +0000] "GET / HTTP/1.1" 200 512 "-" "curl/7.88"\n'


def purge(log: Path) -> str:
    result = run(
        [
            "ansible-playbook",
            "-i",
            "localhost,",
            str(ROOT / "tests/deploy/purge_key_logs.yml"),
            "-e",
            f"nginx_legacy_access_log={log}",
        ],
        timeout=120,
    )
    assert result.returncode == 0, tail(result)
    return result.stdout


@pytest.fixture
def logs() -> Iterator[Path]:
    folder = open_tempdir("onair-keylog-")
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_the_role_purges_key_lines_once_and_tells_to_rotate_keys(logs: Path) -> None:
    log = logs / "access.log"
    log.write_bytes(HTTP + LEAKED + HTTP)
    (logs / "access.log.1").write_bytes(LEAKED)
    (logs / "access.log.2.gz").write_bytes(gzip.compress(HTTP + LEAKED))

    first = purge(log)
    assert re.search(r"changed=1\b", first), first
    assert "rotate every channel" in first and "rotate-key" in first, first
    assert KEY not in first
    for path in logs.iterdir():
        data = path.read_bytes()
        text = gzip.decompress(data) if path.suffix == ".gz" else data
        assert KEY.encode() not in text, path
    assert log.read_bytes() == HTTP + HTTP
    assert gzip.decompress((logs / "access.log.2.gz").read_bytes()) == HTTP

    second = purge(log)  # idempotent: nothing left, nothing changed, no warning
    assert re.search(r"changed=0\b", second) and "WARNING" not in second, second
