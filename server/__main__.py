"""The `onair` command: up, serve, migrate, channel, nginx-config."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import asyncpg
import uvloop

from server.channels.store import ChannelStore, check_slug, check_title
from server.logs import setup_logging
from server.ops import nginx
from server.ops.pgcluster import PgCluster
from server.settings import Settings, SettingsError, load_settings
from server.web.errors import ApiError


def build_parser() -> argparse.ArgumentParser:
    """Every subcommand and its options."""
    parser = argparse.ArgumentParser(prog="onair", description="Live streaming and chat server.")
    parser.add_argument("--config", type=Path, help="TOML settings file (or ONAIR_CONFIG)")
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="run the whole stack in the foreground")
    up.add_argument("--data-dir", type=Path, help="state folder (default /var/lib/onair as root)")
    up.add_argument("--http-port", type=int, help="HTTP port for pages, API and HLS (8080)")
    up.add_argument("--rtmp-port", type=int, help="RTMP port OBS publishes to (1935)")
    up.add_argument("--host", help="address to listen on (0.0.0.0)")
    up.add_argument(
        "--workers", type=int, help="server processes sharing HTTP and chat (1; or ONAIR_WORKERS)"
    )

    sub.add_parser("serve", help="run the server alone (as systemd does)")
    sub.add_parser("migrate", help="apply database migrations")

    channel = sub.add_parser("channel", help="manage channels")
    channel_sub = channel.add_subparsers(dest="action", required=True)
    create = channel_sub.add_parser("create", help="create a channel and print its stream key")
    create.add_argument("slug")
    create.add_argument("--title")
    channel_sub.add_parser("list", help="list channels")
    for action in ("rotate-key", "delete"):
        one = channel_sub.add_parser(action, help=f"{action.replace('-', ' ')} of a channel")
        one.add_argument("slug")

    sub.add_parser("nginx-config", help="print the nginx config rendered from nginx/")
    return parser


def resolve_database_url(settings: Settings) -> str:
    """ONAIR_DATABASE_URL, else the private cluster `onair up` runs under the data dir."""
    if settings.database_url:
        return settings.database_url
    cluster_root = settings.data_dir / "postgres"
    if not (cluster_root / "data" / "PG_VERSION").exists():
        raise SystemExit(
            f"onair: no database: set ONAIR_DATABASE_URL or start `onair up` "
            f"(no private cluster in {cluster_root})"
        )
    return PgCluster(cluster_root).url()


async def channel_command(settings: Settings, args: argparse.Namespace) -> int:
    """`onair channel …` straight against the database."""
    pool = await asyncpg.create_pool(resolve_database_url(settings), min_size=1, max_size=1)
    channels = ChannelStore(pool)
    try:
        if args.action == "create":
            slug = check_slug(args.slug)
            title = check_title(args.title or slug)
            channel, key = await channels.create(slug, title)
            print(f"channel {channel.slug} created")
            print(f"stream key: {key}  (shown once; keep it secret)")
        elif args.action == "list":
            for c in await channels.list():
                state = "disabled" if c.disabled else "enabled"
                print(f"{c.slug}\t{state}\t{c.created_at:%Y-%m-%d}\t{c.title}")
        elif args.action == "rotate-key":
            key = await channels.rotate_key(args.slug)
            print(f"new stream key for {args.slug}: {key}  (the old key no longer works)")
        elif args.action == "delete":
            await channels.delete(args.slug)
            print(f"channel {args.slug} deleted")
    except ApiError as err:
        print(f"onair: {err.message}", file=sys.stderr)
        return 1
    finally:
        await pool.close()
    return 0


def serve(settings: Settings) -> int:
    """The server alone on loopback; SIGTERM/SIGINT shut it down gracefully."""
    from aiohttp import web

    from server.app import create_app

    if not settings.secret_key:
        # Address hashes and guest ids are keyed with it: without one they are guessable.
        print(
            "onair: ONAIR_SECRET_KEY is not set (16+ characters; `onair up` makes its own)",
            file=sys.stderr,
        )
        return 2
    uvloop.install()
    web.run_app(
        create_app(settings),
        host="127.0.0.1",
        port=settings.server_port,
        print=None,
        access_log=None,
        shutdown_timeout=10,
    )
    return 0


def nginx_config(settings: Settings) -> int:
    """Print the config `onair up` would run (secrets included: mind where it goes)."""
    prefix = settings.data_dir / "nginx"
    values = nginx.config_values(settings, prefix)
    values["hook_secret"] = settings.hook_secret or "<ONAIR_HOOK_SECRET>"
    print(nginx.render(nginx.TEMPLATE.read_text(), values), end="")
    return 0


def run_async(main: Callable[[], Coroutine[Any, Any, int]]) -> int:
    """Run a coroutine on uvloop."""
    return uvloop.run(main())


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `onair` console script."""
    args = build_parser().parse_args(argv)
    overrides: dict[str, Any] = {}
    if args.command == "up":
        overrides = {
            "data_dir": args.data_dir,
            "http_port": args.http_port,
            "rtmp_port": args.rtmp_port,
            "http_host": args.host,
            "workers": args.workers,
        }
    try:
        settings = load_settings(args.config, os.environ, **overrides)
    except SettingsError as err:
        print(f"onair: {err}", file=sys.stderr)
        return 2
    setup_logging(settings.log_level)

    if args.command == "up":
        from server.ops.stack import run_stack

        return run_async(lambda: run_stack(settings))
    if args.command == "serve":
        return serve(settings)
    if args.command == "migrate":
        from server.db import migrate_url

        async def do_migrate() -> int:
            applied = await migrate_url(resolve_database_url(settings))
            print(json.dumps({"applied": applied}))
            return 0

        return run_async(do_migrate)
    if args.command == "channel":
        return run_async(lambda: channel_command(settings, args))
    if args.command == "nginx-config":
        return nginx_config(settings)
    return 2


if __name__ == "__main__":
    sys.exit(main())
