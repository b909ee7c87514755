"""Render nginx/onair.conf.template and run nginx with a private prefix."""

from __future__ import annotations

import asyncio
import os
import pwd
import resource
import shutil
import signal
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import jinja2

from server.settings import Settings

TEMPLATE = Path(__file__).resolve().parents[2] / "nginx" / "onair.conf.template"
RTMP_MODULE = Path("/usr/lib/nginx/modules/ngx_rtmp_module.so")


class NginxError(Exception):
    """nginx is missing, its config is bad, or it would not start."""


def render(template: str, values: Mapping[str, object]) -> str:
    """Render the Jinja2 template as Ansible's template module does; a missing value is an error.

    trim_blocks matches Ansible's default, so `onair up` and production read the same file alike.
    """
    env = jinja2.Environment(
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    try:
        return env.from_string(template).render(**values)
    except jinja2.UndefinedError as err:
        raise NginxError(f"template placeholder has no value: {err.message}") from err
    except jinja2.TemplateSyntaxError as err:
        raise NginxError(f"template error at line {err.lineno}: {err.message}") from err


def worker_user() -> str | None:
    """Under root, nginx workers drop to www-data (Debian's nginx user) or nobody."""
    if os.geteuid() != 0:
        return None
    for name in ("www-data", "nobody"):
        try:
            return pwd.getpwnam(name).pw_name
        except KeyError:
            continue
    return None


@dataclass(frozen=True)
class NginxLayout:
    """Where a private nginx keeps its config, pid, logs and temp files."""

    prefix: Path

    @property
    def conf(self) -> Path:
        return self.prefix / "nginx.conf"

    @property
    def pid(self) -> Path:
        return self.prefix / "nginx.pid"


def config_values(settings: Settings, prefix: Path) -> dict[str, object]:
    """The template's values for a private prefix (`onair up`, tests, benches): plain HTTP."""
    user = worker_user()
    return {
        "user_directive": f"user {user};" if user else "",
        "run_dir": str(prefix),
        "log_dir": str(prefix),
        "temp_dir": str(prefix / "temp"),
        "access_log": "off",
        "rtmp_module": str(RTMP_MODULE),
        "mime_types": "/etc/nginx/mime.types",
        "rtmp_listen": f"{settings.http_host}:{settings.rtmp_port}",
        "http_listen": f"{settings.http_host}:{settings.http_port}",
        "server_port": str(settings.server_port),
        "hook_secret": settings.hook_secret,
        "media_dir": str(settings.media_root),
        "tls": False,
        "worker_connections": worker_connections(),
    }


def worker_connections(wanted: int = 65536) -> int:
    """Slots per worker: the template's default, or what an unprivileged nginx may open.

    Under root nginx raises its own descriptor limit (worker_rlimit_nofile, twice this); an
    unprivileged `onair up` cannot pass its hard limit, so it asks for what fits (each proxied
    request holds two descriptors).
    """
    if os.geteuid() == 0:
        return wanted
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        return wanted
    return max(1024, min(wanted, hard // 2))


def write_config(layout: NginxLayout, values: Mapping[str, object]) -> Path:
    """Render the template into the prefix (0600: the hook secret is in it)."""
    if not RTMP_MODULE.exists():
        raise NginxError(f"{RTMP_MODULE} is missing (apt-get install libnginx-mod-rtmp)")
    temp = layout.prefix / "temp"
    temp.mkdir(parents=True, exist_ok=True)
    user = worker_user()
    if user is not None:
        # Workers run unprivileged and buffer request bodies and proxied responses here.
        entry = pwd.getpwnam(user)
        os.chown(temp, entry.pw_uid, entry.pw_gid)
    text = render(TEMPLATE.read_text(), values)
    fd = os.open(layout.conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return layout.conf


def nginx_binary() -> str:
    """Debian's nginx, found on PATH or in /usr/sbin."""
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if not found:
        raise NginxError("nginx is not installed (apt-get install nginx libnginx-mod-rtmp)")
    return found


def test_config(layout: NginxLayout) -> None:
    """`nginx -t` on the rendered config; raises with nginx's own words."""
    result = subprocess.run(
        [nginx_binary(), "-t", "-q", "-p", str(layout.prefix), "-c", str(layout.conf)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise NginxError(result.stderr.strip())


async def start_nginx(layout: NginxLayout) -> asyncio.subprocess.Process:
    """nginx in the foreground (`daemon off`) as our child; its errors go to the prefix log."""
    return await asyncio.create_subprocess_exec(
        nginx_binary(),
        "-p",
        str(layout.prefix),
        "-c",
        str(layout.conf),
        "-g",
        "daemon off;",
        stdin=asyncio.subprocess.DEVNULL,
        start_new_session=True,
    )


async def stop_nginx(process: asyncio.subprocess.Process, timeout: float = 10.0) -> None:
    """Graceful QUIT (finish open requests), then TERM, then KILL."""
    for sig in (signal.SIGQUIT, signal.SIGTERM, signal.SIGKILL):
        if process.returncode is not None:
            return
        process.send_signal(sig)
        try:
            await asyncio.wait_for(process.wait(), timeout)
            return
        except TimeoutError:
            continue


def error_log_tail(layout: NginxLayout, size: int = 800) -> str:
    """The end of nginx's error log, for error messages."""
    try:
        return (layout.prefix / "nginx-error.log").read_bytes()[-size:].decode(errors="replace")
    except OSError:
        return ""
