"""The ladder's settings: ONAIR_LADDER_*, ONAIR_HEVC_*, ONAIR_AV1_*, ONAIR_SEGMENT_SECONDS and
TOML table [ladder] (with [ladder.av1]); settings.py reads them like every other field."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from transcoder.live.encoders import PRESETS
from transcoder.live.ladder import AV1_PRESETS, EFFICIENT_CODECS, HEVC_ENCODERS, RATE_CONTROLS, Rung


def _items(raw: Any) -> list[str]:
    """A comma-separated string or a TOML array of strings, stripped, empties dropped."""
    items = raw.split(",") if isinstance(raw, str) else raw
    if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
        raise ValueError
    return [i.strip() for i in items if i.strip()]


def _parse_codecs(raw: Any) -> tuple[str, ...]:
    codecs = [c.lower() for c in _items(raw)]
    if not codecs or len(set(codecs)) != len(codecs):
        raise ValueError
    if any(c not in EFFICIENT_CODECS for c in codecs):
        raise ValueError
    return tuple(codecs)


def _parse_rungs(raw: Any) -> tuple[Rung, ...]:
    rungs = []
    for item in _items(raw):
        height, _, kbps = item.partition(":")
        rung = Rung(int(height), int(kbps))
        if not (144 <= rung.height <= 4320 and 50 <= rung.video_kbps <= 100_000):
            raise ValueError
        rungs.append(rung)
    if not rungs or len({r.height for r in rungs}) != len(rungs):
        raise ValueError
    return tuple(sorted(rungs, key=lambda r: r.height, reverse=True))


def _parse_encoder(raw: Any) -> str:
    if raw not in HEVC_ENCODERS:
        raise ValueError
    return str(raw)


def _parse_hevc_preset(raw: Any) -> str:
    if raw != "auto" and not any(raw in names for names in PRESETS.values()):
        raise ValueError
    return str(raw)


def _parse_av1_preset(raw: Any) -> str:
    if str(raw) == "auto":
        return "auto"
    if isinstance(raw, bool) or int(raw) not in AV1_PRESETS:
        raise ValueError
    return str(int(raw))


def _parse_rate_control(raw: Any) -> str:
    if raw not in RATE_CONTROLS:
        raise ValueError
    return str(raw)


def _parse_segment(raw: Any) -> int:
    value = int(raw)
    if isinstance(raw, bool) or not 1 <= value <= 10:
        raise ValueError
    return value


# field -> (parser, what we expected, is it a secret), merged into settings._FIELDS
LADDER_FIELDS: dict[str, tuple[Callable[[Any], Any], str, bool]] = {
    "ladder_codecs": (_parse_codecs, "a comma-separated list of hevc, av1", False),
    "ladder_rungs": (_parse_rungs, "HEIGHT:KBPS list, e.g. 720:2500,480:1200,360:700", False),
    "av1_rungs": (_parse_rungs, "HEIGHT:KBPS list, e.g. 720:2000,480:1000,360:550", False),
    "hevc_encoder": (_parse_encoder, "one of " + ", ".join(HEVC_ENCODERS), False),
    "hevc_preset": (_parse_hevc_preset, "auto or a preset of the HEVC encoder", False),
    "av1_preset": (_parse_av1_preset, "auto or an SVT-AV1 preset 0-13", False),
    "ladder_rate_control": (_parse_rate_control, "capped or average", False),
    "segment_seconds": (_parse_segment, "whole seconds 1-10", False),
}

# [ladder] key -> setting; [ladder.av1] rungs -> av1_rungs. In TOML these live only there.
_LADDER_TOML = {
    "codecs": "ladder_codecs",
    "rungs": "ladder_rungs",
    "hevc_encoder": "hevc_encoder",
    "hevc_preset": "hevc_preset",
    "av1_preset": "av1_preset",
    "rate_control": "ladder_rate_control",
    "segment_seconds": "segment_seconds",
}


def ladder_toml_entries(table: dict[str, Any], where: str, problems: list[str]) -> dict[str, Any]:
    """setting name -> (where it came from, value) for the keys of a TOML [ladder] table."""
    out: dict[str, tuple[str, Any]] = {}
    for key, value in table.items():
        if key == "av1" and isinstance(value, dict):
            for sub, sub_value in value.items():
                if sub == "rungs":
                    out["av1_rungs"] = (f"ladder.av1.rungs {where}", sub_value)
                else:
                    problems.append(f"ladder.av1.{sub} {where}: unknown setting")
        elif key in _LADDER_TOML:
            out[_LADDER_TOML[key]] = (f"ladder.{key} {where}", value)
        else:
            problems.append(f"ladder.{key} {where}: unknown setting")
    return out


def check_hevc_preset(values: dict[str, Any], problems: list[str]) -> None:
    """A named HEVC preset must be one the chosen encoder has (VAAPI has none)."""
    encoder = values.get("hevc_encoder", "libx265")
    preset = values.get("hevc_preset", "auto")
    if preset != "auto" and preset not in PRESETS[encoder]:
        named = ", ".join(PRESETS[encoder]) or "none"
        problems.append(
            f"hevc_preset: got {preset!r}, expected auto or a {encoder} preset: {named}"
        )
