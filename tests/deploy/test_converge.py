"""A real converge of the all-in-one inventory on this machine, then the stack it built.

connection=local as root; no systemd as PID 1 here, so services start through the roles'
direct path (deploy_service_manager: direct). Everything that could cut the machine off or
change it for good (firewall, sshd, unattended upgrades, fail2ban, Let's Encrypt, the default
PostgreSQL cluster, system paths) is turned off or pointed at a temp folder, and torn down after.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import shutil
import ssl
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from server.ops.nginx import nginx_binary
from tests.conftest import free_port, open_tempdir
from tests.deploy.helpers import run, tail

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.geteuid() != 0, reason="a converge runs as root"),
    pytest.mark.skipif(
        shutil.which("pg_createcluster") is None, reason="needs Debian's postgresql"
    ),
]

PG_VERSION_DIR = Path("/usr/lib/postgresql")


@dataclass
class Converged:
    """What the converge built, where, and how to reach it."""

    root: Path
    values: dict[str, object]
    output: str

    def path(self, name: str) -> Path:
        return Path(str(self.values[name]))

    @property
    def https(self) -> str:
        return f"https://127.0.0.1:{self.values['nginx_https_listen']}".replace(
            "127.0.0.1:127.0.0.1:", "127.0.0.1:"
        )


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `check` until it holds, failing with `what` at the deadline."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


def pid_alive(pidfile: Path) -> int | None:
    """The pid in `pidfile` when that process is alive (not a zombie)."""
    try:
        pid = int(pidfile.read_text().split()[0])
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, ValueError, IndexError):
        return None
    return None if state == "Z" else pid


def converge_values(root: Path) -> dict[str, object]:
    """Extra variables that keep the converge inside `root` and off the machine's own services."""
    http, https, rtmp = free_port(), free_port(), free_port()
    return {
        "ansible_connection": "local",
        "ansible_python_interpreter": "/usr/bin/python3",
        # There is no sudo here; su as root asks for no password.
        "ansible_become_method": "su",
        # The service user has no login shell (nologin), as on a real host.
        "ansible_become_flags": "-s /bin/sh",
        "deploy_service_manager": "direct",
        "deploy_direct_run_dir": str(root / "run"),
        "deploy_media_dir": str(root / "media"),
        "deploy_server_port": free_port(),
        # Two server processes (onair-0.pid, onair-1.pid on the next port), nginx's hooks
        # through its loopback listener: the multi-worker path (the lab's hosts run one).
        "deploy_workers": 2,
        "deploy_hooks_port": free_port(),
        "deploy_domain": "localhost",
        "deploy_admin_email": "ops@example.com",
        "common_packages": ["ca-certificates", "python3-apt"],
        "common_apt_cache_valid_time": 10**9,
        "common_sshd_harden": False,
        "common_unattended_upgrades": False,
        "common_time_sync": False,
        "firewall_enabled": False,
        "fail2ban_enabled": False,
        "monitoring_enabled": False,
        "block_storage_device": "",
        "postgresql_cluster": "onairci" + secrets.token_hex(3),
        "postgresql_port": free_port(),
        "postgresql_memtotal_mb": 2048,
        "redis_port": free_port(),
        "redis_config_path": str(root / "redis/redis.conf"),
        "redis_data_dir": str(root / "redis/data"),
        "redis_log_file": str(root / "redis/log/redis.log"),
        "redis_pid_file": str(root / "redis/run/redis.pid"),
        "nginx_letsencrypt": False,
        "nginx_tls_dir": str(root / "tls"),
        "nginx_acme_root": str(root / "acme"),
        "nginx_http_listen": f"127.0.0.1:{http}",
        "nginx_https_listen": f"127.0.0.1:{https}",
        "nginx_rtmp_listen": f"127.0.0.1:{rtmp}",
        "nginx_config_path": str(root / "nginx/nginx.conf"),
        "nginx_run_dir": str(root / "nginx"),
        "nginx_log_dir": str(root / "nginx"),
        "nginx_temp_dir": str(root / "nginx/temp"),
        "nginx_access_log": "off",
        "onair_user": "onairci",
        "onair_install_dir": str(root / "opt"),
        "onair_data_dir": str(root / "state"),
        "onair_config_dir": str(root / "etc"),
        "onair_unit_dir": str(root / "units"),
        "onair_rtmp_port": rtmp,
        "onair_public_url": f"https://localhost:{https}",
        "backups_repository": str(root / "backups/restic"),
        "backups_staging_dir": str(root / "backups/staging"),
        "backups_state_dir": str(root / "backups/state"),
        "backups_script_dir": str(root / "sbin"),
        "backups_config_dir": str(root / "etc-backup"),
        "backups_unit_dir": str(root / "units"),
        "backups_textfile_dir": str(root / "textfile"),
        "vault_onair_admin_token": "ci-admin-" + secrets.token_hex(12),
        "vault_onair_hook_secret": "ci-hook-" + secrets.token_hex(12),
        "vault_onair_secret_key": "ci-key-" + secrets.token_hex(12),
        "vault_onair_db_password": secrets.token_hex(12),
        "vault_redis_password": secrets.token_hex(12),
        "vault_backup_password": secrets.token_hex(12),
    }


def teardown(values: dict[str, object], root: Path) -> None:
    """Stop everything the converge started and remove what it created outside `root`."""
    run_dir = Path(str(values["deploy_direct_run_dir"]))
    for pidfile in sorted((run_dir / "onair").glob("onair-*.pid")):  # one per worker
        subprocess.run(
            [
                "start-stop-daemon",
                "--stop",
                "--oknodo",
                "--pidfile",
                str(pidfile),
                "--retry",
                "TERM/30/KILL/5",
            ],
            check=False,
            capture_output=True,
        )
    conf = str(values["nginx_config_path"])
    if Path(conf).exists():
        subprocess.run([nginx_binary(), "-c", conf, "-s", "quit"], check=False, capture_output=True)
    subprocess.run(
        [
            "start-stop-daemon",
            "--stop",
            "--oknodo",
            "--pidfile",
            str(values["redis_pid_file"]),
            "--user",
            "redis",
            "--exec",
            "/usr/bin/redis-server",
            "--retry",
            "TERM/10/KILL/5",
        ],
        check=False,
        capture_output=True,
    )
    for version in sorted(p.name for p in PG_VERSION_DIR.iterdir()):
        if Path(f"/etc/postgresql/{version}/{values['postgresql_cluster']}").exists():
            subprocess.run(
                ["pg_dropcluster", "--stop", version, str(values["postgresql_cluster"])],
                check=False,
                capture_output=True,
            )
            # pg_dropcluster leaves the conf.d folder the role made.
            shutil.rmtree(f"/etc/postgresql/{version}/{values['postgresql_cluster']}", True)
    nginx_pid = Path(str(values["nginx_run_dir"])) / "nginx.pid"
    wait_for(lambda: pid_alive(nginx_pid) is None, 30, "nginx to stop")
    try:
        pwd.getpwnam(str(values["onair_user"]))
        subprocess.run(["userdel", str(values["onair_user"])], check=False, capture_output=True)
    except KeyError:
        pass
    shutil.rmtree(root, ignore_errors=True)


def converge(extra_vars: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    """site.yml on this machine as the all-in-one host, with the test's variables."""
    playbook = ["ansible-playbook", "-i", "inventories/all-in-one", "site.yml"]
    return run([*playbook, "--limit", "onair1", "-e", f"@{extra_vars}"], timeout=timeout)


@pytest.fixture(scope="module")
def converged() -> Iterator[Converged]:
    root = open_tempdir("onair-converge-")
    values = converge_values(root)
    extra = root / "converge-vars.json"
    extra.write_text(json.dumps(values))
    try:
        result = converge(extra, timeout=420)
        log = root / "run/onair/onair-0.log"
        server_log = log.read_text()[-4000:] if log.exists() else "(no server log)"
        assert result.returncode == 0, tail(result, 8000) + "\n--- onair.log ---\n" + server_log
        yield Converged(root, values, result.stdout)
    finally:
        teardown(values, root)


def get(url: str) -> tuple[int, bytes, dict[str, str]]:
    """GET without following redirects, trusting the test's self-signed certificate."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: object, **kwargs: object) -> None:
            return None

    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context), NoRedirect)
    try:
        with opener.open(url, timeout=10) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as err:
        return err.code, err.read(), dict(err.headers)


def test_healthz_answers_200_through_nginx_over_https(converged: Converged) -> None:
    https = str(converged.values["nginx_https_listen"])
    status, body, headers = get(f"https://{https}/healthz")
    assert status == 200, body
    assert json.loads(body)["status"] == "ok"
    assert "max-age" in headers.get("Strict-Transport-Security", "")
    # Plain HTTP sends everyone to HTTPS; the private endpoints stay closed from outside.
    status, _, headers = get(f"http://{converged.values['nginx_http_listen']}/api/channels")
    assert status == 301
    assert headers["Location"].startswith("https://")
    status, _, _ = get(f"https://{https}/hooks/rtmp/publish")
    assert status == 404


def test_two_workers_one_owner_and_hooks_reach_it(converged: Converged) -> None:
    first = int(str(converged.values["deploy_server_port"]))
    owners = []
    for port in (first, first + 1):
        status, body, _ = get(f"http://127.0.0.1:{port}/metrics")
        assert status == 200
        owners += [line for line in body.decode().splitlines() if line.startswith("onair_owner ")]
    assert sorted(owners) == ["onair_owner 0.0", "onair_owner 1.0"], owners
    # nginx-rtmp's hooks go through nginx's loopback listener to whichever worker owns: an
    # unknown key is the owner's 403, never the other worker's 503.
    hooks = f"127.0.0.1:{converged.values['deploy_hooks_port']}"
    secret = str(converged.values["vault_onair_hook_secret"])
    form = urllib.parse.urlencode({"app": "live", "name": "nope", "clientid": "1"}).encode()
    for _ in range(4):  # round robin would meet both workers
        request = urllib.request.Request(
            f"http://{hooks}/hooks/rtmp/publish?secret={secret}", data=form, method="POST"
        )
        try:
            urllib.request.urlopen(request, timeout=10)
            raise AssertionError("an unknown key was accepted")
        except urllib.error.HTTPError as err:
            assert err.code == 403, err.code


def test_rendered_nginx_config_passes_nginx_t(converged: Converged) -> None:
    result = subprocess.run(
        [nginx_binary(), "-t", "-q", "-c", str(converged.values["nginx_config_path"])],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    conf = Path(str(converged.values["nginx_config_path"])).read_text()
    assert "ssl http2;" in conf and "limit_req zone=onair_api" in conf


def test_systemd_units_verify(converged: Converged) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    units = converged.path("onair_unit_dir")
    names = ["onair@.service", "onair-backup.service", "onair-backup.timer"]
    for name in names:
        assert (units / name).exists(), name
    result = subprocess.run(
        [analyze, "verify", *(str(units / n) for n in names)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "SYSTEMD_LOG_LEVEL": "warning"},
    )
    # Only complaints about our own files count: the host's other units are not ours to judge.
    ours = [line for line in result.stderr.splitlines() if str(units) in line]
    assert result.returncode == 0 or not ours, result.stderr
    assert ours == [], result.stderr
    onair = (units / "onair@.service").read_text()
    for directive in (
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "CapabilityBoundingSet=\n",
        "SystemCallFilter=@system-service",
        "KillMode=mixed",
        "MemoryMax=75%",
        "TasksMax=4096",
        f"ReadWritePaths={converged.values['deploy_media_dir']}",
    ):
        assert directive in onair, directive


def test_converge_is_repeatable_and_idempotent(converged: Converged) -> None:
    extra = converged.root / "converge-vars.json"
    result = converge(extra, timeout=300)
    assert result.returncode == 0, tail(result, 12000)
    recap = result.stdout[result.stdout.rindex("PLAY RECAP") :]
    assert "changed=0" in recap, tail(result, 12000)


def psql(converged: Converged, database: str, sql: str) -> str:
    """One query as the postgres superuser on the converged cluster."""
    result = subprocess.run(
        [
            "su",
            "postgres",
            "-s",
            "/bin/sh",
            "-c",
            f'psql -X -qAt -p {converged.values["postgresql_port"]} -d {database} -c "{sql}"',
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd="/",
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_backup_then_restore_into_an_empty_database(converged: Converged) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONAIR_")}
    env_file = converged.path("onair_config_dir") / "onair.env"
    for line in env_file.read_text().splitlines():
        if line.startswith("ONAIR_"):
            name, _, value = line.partition("=")
            env[name] = value.strip("'")
    onair = converged.path("onair_install_dir") / "venv/bin/onair"
    for slug in ("news", "music"):
        created = subprocess.run(
            [str(onair), "channel", "create", slug, "--title", slug.title()],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert created.returncode == 0, created.stderr
    has_chat = (
        psql(converged, "onair", "SELECT to_regclass('public.chat_messages') IS NOT NULL") == "t"
    )
    if has_chat:
        columns = psql(
            converged,
            "onair",
            "SELECT string_agg(column_name, ',') FROM information_schema.columns "
            "WHERE table_name = 'chat_messages'",
        )
        assert columns  # the restore compares whole rows, whatever the columns are
    before_channels = psql(
        converged, "onair", "SELECT slug, title, key_hash FROM channels ORDER BY slug"
    )
    before_chat = (
        psql(converged, "onair", "SELECT * FROM chat_messages ORDER BY 1") if has_chat else ""
    )

    scripts = converged.path("backups_script_dir")
    backup = subprocess.run(
        ["su", "postgres", "-s", "/bin/sh", "-c", str(scripts / "onair-backup")],
        capture_output=True,
        text=True,
        check=False,
        cwd="/",
    )
    assert backup.returncode == 0, backup.stdout + backup.stderr
    assert (converged.path("backups_repository") / "config").exists()

    psql(converged, "postgres", "CREATE DATABASE onair_restored OWNER onair")
    restore = subprocess.run(
        ["su", "postgres", "-s", "/bin/sh", "-c", f"{scripts / 'onair-restore'} onair_restored"],
        capture_output=True,
        text=True,
        check=False,
        cwd="/",
    )
    assert restore.returncode == 0, restore.stdout + restore.stderr
    after = psql(
        converged, "onair_restored", "SELECT slug, title, key_hash FROM channels ORDER BY slug"
    )
    assert after == before_channels
    assert "news|News|" in after and "music|Music|" in after
    if has_chat:
        assert (
            psql(converged, "onair_restored", "SELECT * FROM chat_messages ORDER BY 1")
            == before_chat
        )

    # Restoring over a database that has data is refused, not merged.
    again = subprocess.run(
        ["su", "postgres", "-s", "/bin/sh", "-c", f"{scripts / 'onair-restore'} onair_restored"],
        capture_output=True,
        text=True,
        check=False,
        cwd="/",
    )
    assert again.returncode == 1
    assert "not empty" in again.stderr
