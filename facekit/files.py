"""Reading and writing the project's JSON and YAML files: parse errors name the file, writes are atomic.

TF-free (the LiteRT runtime reads its sidecar .json through here).
"""
from __future__ import annotations

import json
import os


def _read(path: str, kind: str, parse, parse_errors: tuple):
    """parse(open file) -> content; ValueError naming the file when it is missing or does not parse."""
    try:
        with open(path, encoding="utf-8") as f:
            return parse(f)
    except FileNotFoundError:
        raise ValueError(f"{path}: file not found") from None
    except (*parse_errors, UnicodeDecodeError) as err:
        detail = " ".join(str(err).split())
        raise ValueError(f"{path}: not valid {kind} ({detail}); the file is damaged: restore or regenerate "
                         f"it") from None


def read_json(path: str):
    """The parsed JSON file; ValueError naming the file when it is missing or not valid JSON."""
    return _read(path, "JSON", json.load, (json.JSONDecodeError,))


def read_yaml(path: str):
    """The parsed YAML file (None when empty); ValueError naming the file when it is missing or not valid YAML."""
    import yaml

    return _read(path, "YAML", yaml.safe_load, (yaml.YAMLError,))


def write_json(path: str, payload, indent: int | None = 1) -> None:
    """Write JSON atomically: a reader never sees half a file, an interrupted write leaves the old one."""
    tmp = path + ".tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(payload, f, indent=indent)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
