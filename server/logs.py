"""One-line key=value logs."""

from __future__ import annotations

import logging
import sys
import time


class KeyValueFormatter(logging.Formatter):
    """`ts=… level=… logger=… msg="…"`: one event per line, easy to grep and to ship."""

    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        msg = record.getMessage().replace("\n", "\\n")
        line = f"ts={ts}Z level={record.levelname.lower()} logger={record.name} {msg}"
        if record.exc_info:
            line += " exc=" + repr(self.formatException(record.exc_info).replace("\n", "\\n"))
        return line


def setup_logging(level: str) -> None:
    """Send every onair log line to stderr in key=value form."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(KeyValueFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiohttp's access log would repeat every playlist fetch; the metrics count them instead.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
