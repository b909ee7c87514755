"""The multi-host inventories render configs that point at the right private addresses."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from server.ops.nginx import nginx_binary
from tests.conftest import free_port, open_tempdir
from tests.deploy.helpers import ROOT, run, tail

# The example private addresses in ansible/inventories/{two-server,split}/hosts.yml.
DATA, MEDIA, EDGE1, EDGE2 = "10.40.96.3", "10.40.96.4", "10.40.96.5", "10.40.96.6"


def render(topology: str, out: Path, *extra: str) -> Path:
    """Run tests/deploy/render.yml for every host of the inventory into `out`."""
    result = run(
        [
            "ansible-playbook",
            "-i",
            f"inventories/{topology}",
            str(ROOT / "tests/deploy/render.yml"),
            "-e",
            f"render_root={out}",
            *extra,
        ],
        timeout=240,
    )
    assert result.returncode == 0, tail(result)
    return out


@pytest.fixture(scope="module")
def two_server() -> Iterator[Path]:
    out = open_tempdir("onair-render-two-")
    yield render("two-server", out)
    shutil.rmtree(out, ignore_errors=True)


@pytest.fixture(scope="module")
def three_workers() -> Iterator[Path]:
    out = open_tempdir("onair-render-workers-")
    yield render("two-server", out, "-e", "deploy_workers=3")
    shutil.rmtree(out, ignore_errors=True)


@pytest.fixture(scope="module")
def split() -> Iterator[Path]:
    out = open_tempdir("onair-render-split-")
    yield render("split", out)
    shutil.rmtree(out, ignore_errors=True)


def env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name] = value.strip("'")
    return values


def test_two_server_data_host_listens_privately_for_the_media_host(two_server: Path) -> None:
    pg = (two_server / "data1/postgresql/conf.d/onair.conf").read_text()
    assert f"listen_addresses = 'localhost,{DATA}'" in pg
    hba = (two_server / "data1/postgresql/pg_hba.conf").read_text()
    assert re.search(rf"^host\s+onair\s+onair\s+{MEDIA}/32\s+scram-sha-256$", hba, re.M)
    assert "0.0.0.0/0" not in hba and "all  all" not in hba
    redis = (two_server / "data1/redis/redis.conf").read_text()
    assert f"bind 127.0.0.1 -::1 {DATA}\n" in redis
    assert "requirepass render-redis-password" in redis
    rules = json.loads((two_server / "data1/firewall.json").read_text())
    assert {"port": "5432", "from": MEDIA, "what": "PostgreSQL"} in rules["private"]
    assert {"port": "6379", "from": MEDIA, "what": "Redis"} in rules["private"]
    assert rules["public"] == ["22"]


def test_two_server_media_host_uses_the_data_host(two_server: Path) -> None:
    env = env_file(two_server / "media1/onair/onair.env")
    assert env["ONAIR_DATABASE_URL"] == f"postgresql://onair:render-db-password@{DATA}:5432/onair"
    assert env["ONAIR_REDIS_URL"] == f"redis://:render-redis-password@{DATA}:6379/0"
    conf = (two_server / "media1/nginx/nginx.conf").read_text()
    assert "listen 1935;" in conf  # RTMP ingest
    assert "listen 443 ssl http2;" in conf
    assert f"listen {MEDIA}:8090;" in conf
    assert f"allow {DATA};" in conf  # Prometheus on the data host scrapes /metrics
    assert "onair_hls" not in conf  # segments come from its own disk
    rules = json.loads((two_server / "media1/firewall.json").read_text())
    assert rules["public"] == ["1935", "22", "443", "80"]
    assert {"port": "8090", "from": DATA, "what": "HLS origin and /metrics"} in rules["private"]
    assert not (two_server / "media1/postgresql").exists()


def test_split_db_host_admits_every_onair_host(split: Path) -> None:
    hba = (split / "db1/postgresql/pg_hba.conf").read_text()
    # In inventory order, the same on every run (a set's order changed with each run's hash
    # seed, and a second converge rewrote pg_hba and nginx.conf: changed=1 on four hosts).
    admitted = re.findall(r"^host\s+onair\s+onair\s+(10\.\S+)/32\s", hba, re.M)
    assert admitted == [MEDIA, EDGE1, EDGE2], hba
    assert f"bind 127.0.0.1 -::1 {DATA}\n" in (split / "db1/redis/redis.conf").read_text()


def test_split_edges_fetch_hls_from_the_media_host(split: Path) -> None:
    for edge in ("edge1", "edge2"):
        conf = (split / edge / "nginx/nginx.conf").read_text()
        assert re.search(rf"upstream onair_hls \{{\s+server {MEDIA}:8090;", conf), conf
        assert "rtmp {" not in conf and "load_module" not in conf
        assert "listen 443 ssl http2;" in conf
        env = env_file(split / edge / "onair/onair.env")
        assert f"@{DATA}:5432/onair" in env["ONAIR_DATABASE_URL"]
        assert f"@{DATA}:6379/0" in env["ONAIR_REDIS_URL"]


def test_split_edges_answer_http_01_for_each_other(split: Path) -> None:
    """Both edges serve deploy_domain, so Let's Encrypt may ask either for either's token: a
    token an edge does not hold is asked of the other over the private network."""
    for edge, own, peer in (("edge1", EDGE1, EDGE2), ("edge2", EDGE2, EDGE1)):
        conf = (split / edge / "nginx/nginx.conf").read_text()
        assert re.search(rf"upstream onair_acme_peers \{{\s+server {peer}:8090;\s+\}}", conf)
        assert "try_files $uri @acme_peers;" in conf
        private = conf[conf.index(f"listen {own}:8090;") :]
        assert re.search(r"location /.well-known/acme-challenge/ \{\s+root \S+/acme;\s+\}", private)
        assert "@acme_peers" not in private  # a peer's question is never passed on: no loop
        rules = json.loads((split / edge / "firewall.json").read_text())
        rule = {"port": "8090", "from": peer, "what": "/metrics and ACME tokens"}
        assert rule in rules["private"]
    media = (split / "media1/nginx/nginx.conf").read_text()
    assert "@acme_peers" not in media  # no public web there, no certificate


def test_split_edges_fetch_recordings_and_videos_from_the_media_host(split: Path) -> None:
    """Their files live on the media host that made them; the edges ask each origin in turn."""
    for edge in ("edge1", "edge2"):
        conf = (split / edge / "nginx/nginx.conf").read_text()
        block = re.search(r'location ~ "\^/\(vod\|videos\)/" \{(.*?)\n        \}', conf, re.S)
        assert block, conf
        assert "proxy_pass http://onair_hls;" in block[1]
        assert "proxy_next_upstream error timeout http_404;" in block[1]
    media = (split / "media1/nginx/nginx.conf").read_text()
    private = media[media.index(f"listen {MEDIA}:8090;") :]
    assert re.search(r"location /vod/ \{\s+proxy_pass http://onair;", private), private
    assert "alias /srv/onair-media/videos/$1;" in private


def test_split_media_host_is_an_origin_for_edges_only(split: Path) -> None:
    conf = (split / "media1/nginx/nginx.conf").read_text()
    assert "listen 1935;" in conf
    assert "listen 443" not in conf and "listen 80;" not in conf  # no public web here
    assert "listen 127.0.0.1:80;" in conf  # the server's own checks over loopback
    assert f"listen {MEDIA}:8090;" in conf
    # Admitted by the connection's own address (the forwarded one is the viewer's).
    for address in (EDGE1, EDGE2, DATA):
        assert f"        {address} 1;" in conf
    assert re.search(r"alias /srv/onair-media/live/\$1;", conf)
    rules = json.loads((split / "media1/firewall.json").read_text())
    assert rules["public"] == ["1935", "22"]
    assert {"port": "8090", "from": EDGE2, "what": "HLS origin and /metrics"} in rules["private"]


@pytest.mark.parametrize("host", ["split/media1", "split/edge1", "two/media1", "workers/media1"])
def test_rendered_nginx_config_passes_nginx_t(
    host: str, split: Path, two_server: Path, three_workers: Path
) -> None:
    folders = {"split": split, "two": two_server, "workers": three_workers}
    root = folders[host.split("/")[0]] / host.split("/")[1]
    conf = (root / "nginx/nginx.conf").read_text()
    # nginx -t binds what it names; this machine has loopback where the VPS has its private address.
    for address in (DATA, MEDIA, EDGE1, EDGE2):
        conf = conf.replace(f"listen {address}:", "listen 127.0.0.1:")
    conf = re.sub(r"listen (80|443|1935)\b", lambda m: f"listen 127.0.0.1:{free_port()}", conf)
    checked = root / "nginx/nginx-check.conf"
    checked.write_text(conf)
    result = subprocess.run(
        [nginx_binary(), "-t", "-q", "-c", str(checked)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_split_media_host_trusts_the_edges_forwarded_address_only(split: Path) -> None:
    """The private listener takes the viewer's address from the edges' X-Forwarded-For, and
    admits peers by their own address, so the server counts viewers, not edges."""
    conf = (split / "media1/nginx/nginx.conf").read_text()
    private = conf[conf.index(f"listen {MEDIA}:8090;") :]
    private = private[: private.index("\n    }\n")]
    trusted = re.findall(r"set_real_ip_from (\S+);", private)
    assert trusted == [EDGE1, EDGE2], private  # not the monitoring host, not everyone
    assert "real_ip_header X-Forwarded-For;" in private
    assert "real_ip_recursive" not in private  # the last entry: the one the edge appended
    assert "if ($onair_private_peer = 0)" in private
    geo = re.search(r"geo \$realip_remote_addr \$onair_private_peer \{(.*?)\}", conf, re.S)
    assert geo, conf
    for address in (EDGE1, EDGE2, DATA):
        assert f"{address} 1;" in geo[1]
    assert "default 0;" in geo[1]
    for edge in ("edge1", "edge2"):  # nothing public trusts a forwarded address
        assert "set_real_ip_from" not in (split / edge / "nginx/nginx.conf").read_text()


def test_rendered_nginx_limits_every_path_per_address(split: Path) -> None:
    """Rates and connection limits as docs/RELIABILITY.md gives them, on the public server."""
    conf = (split / "edge1/nginx/nginx.conf").read_text()
    for zone, rate in [
        ("onair_api", 20),
        ("onair_pages", 20),
        ("onair_vod", 20),
        ("onair_healthz", 5),
        ("onair_uploads", 200),
        ("onair_socketio", 20),
        ("onair_playlists", 1000),
    ]:
        assert re.search(rf"zone={zone}:\d+m rate={rate}r/s;", conf), zone
        assert f"limit_req zone={zone} " in conf, zone
    assert "limit_conn onair_conn 256;" in conf and "limit_conn onair_conn 4096;" in conf
    assert "worker_connections 65536;" in conf and "worker_rlimit_nofile 131072;" in conf
    for timeout in ("client_header_timeout 10s;", "client_body_timeout 20s;", "send_timeout 20s;"):
        assert timeout in conf


def test_one_worker_by_default_hooks_go_straight_to_it(two_server: Path) -> None:
    """publish and publish_done straight to the one worker; update through nginx's loopback
    HTTP, which answers for the server while it restarts."""
    conf = (two_server / "media1/nginx/nginx.conf").read_text()
    assert re.findall(r"server 127\.0\.0\.1:(\d+)", conf) == ["8081"]
    for hook in ("publish", "publish_done"):
        assert f"on_{hook} http://127.0.0.1:8081/hooks/rtmp/{hook}?" in conf
    assert "on_update http://127.0.0.1:80/hooks/rtmp/update?" in conf
    assert "error_page 502 504 = @update_unanswered;" in conf
    assert env_file(two_server / "media1/onair/onair.env")["ONAIR_WORKERS"] == "1"
    assert env_file(two_server / "media1/onair/worker-0.env") == {"ONAIR_SERVER_PORT": "8081"}
    assert not (two_server / "media1/onair/worker-1.env").exists()


def test_three_workers_behind_nginx(three_workers: Path) -> None:
    """deploy_workers=3: onair@0-2 on 8081-8083, every one in nginx's upstreams, the hooks
    through the loopback listener that finds the owner, Socket.IO by client address."""
    root = three_workers / "media1"
    conf = (root / "nginx/nginx.conf").read_text()
    upstreams = dict(re.findall(r"upstream (\w+) \{(.*?)\}", conf, re.S))
    for name in ("onair", "onair_chat", "onair_uploads", "onair_hooks"):
        assert re.findall(r"server 127\.0\.0\.1:(\d+)", upstreams[name]) == [
            "8081",
            "8082",
            "8083",
        ], name
    assert "hash $remote_addr consistent;" in upstreams["onair_chat"]
    assert "max_fails=0" in upstreams["onair_hooks"]
    assert "listen 127.0.0.1:8079;" in conf
    for hook in ("publish", "publish_done", "update"):
        assert f"on_{hook} http://127.0.0.1:8079/hooks/rtmp/{hook}?" in conf
    assert "proxy_next_upstream error timeout http_503 non_idempotent;" in conf
    # No worker answering update (all restarting): nginx answers it, keeping the publisher.
    hooks_server = conf[conf.index("listen 127.0.0.1:8079;") :]
    assert "error_page 502 504 = @update_unanswered;" in hooks_server
    assert env_file(root / "onair/onair.env")["ONAIR_WORKERS"] == "3"
    for index in range(3):
        port = str(8081 + index)
        assert env_file(root / f"onair/worker-{index}.env") == {"ONAIR_SERVER_PORT": port}
