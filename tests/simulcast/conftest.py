"""Fixtures for the relays: platforms to send to (bench/rtmp_platform.py: a second nginx-rtmp,
optionally behind a TLS front) and a CA the test makes for their certificates."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bench.harness import open_tempdir
from bench.rtmp_platform import Platform
from server.settings import Settings


@dataclass
class LabCA:
    """A CA, and certificates it signed for names."""

    folder: Path
    cert: Path = field(init=False)
    key: Path = field(init=False)

    def __post_init__(self) -> None:
        self.cert, self.key = self.folder / "ca.pem", self.folder / "ca.key"
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                 "-nodes", "-days", "2", "-subj", "/CN=Onair test CA",
                 "-keyout", str(self.key), "-out", str(self.cert))  # fmt: skip

    def issue(self, name: str, *, ip: str | None = None) -> tuple[Path, Path]:
        """A server certificate and key for DNS name `name` (and IP `ip`)."""
        cert, key, csr = (self.folder / f"{name}.{ext}" for ext in ("pem", "key", "csr"))
        ext = self.folder / f"{name}.ext"
        alt = f"DNS:{name}" + (f",IP:{ip}" if ip else "")
        ext.write_text(f"subjectAltName={alt}\nextendedKeyUsage=serverAuth\n")
        _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                 "-subj", f"/CN={name}", "-keyout", str(key), "-out", str(csr))  # fmt: skip
        _openssl("x509", "-req", "-in", str(csr), "-CA", str(self.cert),
                 "-CAkey", str(self.key), "-CAcreateserial", "-days", "2",
                 "-extfile", str(ext), "-out", str(cert))  # fmt: skip
        return cert, key


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


@pytest.fixture(scope="session")
def test_ca() -> Iterator[LabCA]:
    folder = open_tempdir("onair-ca-")
    yield LabCA(folder)
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
async def platforms() -> AsyncIterator[Callable[..., Awaitable[Platform]]]:
    """Start platforms (with a TLS front: pass its certificate and key); all stop at the end."""
    started: list[Platform] = []

    async def start(tls: tuple[Path, Path] | None = None) -> Platform:
        platform = Platform(tls)
        started.append(platform)
        await platform.start()
        return platform

    yield start
    for platform in started:
        await platform.stop()


@pytest.fixture
async def platform(platforms: Callable[..., Awaitable[Platform]]) -> Platform:
    return await platforms()


@pytest.fixture
def settings(settings: Settings, test_ca: LabCA) -> Settings:
    """Relays may go to loopback (the platform is here) and trust the test CA."""
    return settings.with_changes(relay_allow_private=True, relay_ca_file=test_ca.cert)
