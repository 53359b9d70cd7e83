"""Reading and writing the project's JSON and YAML files: parse errors name the file, writes are atomic.

TF-free (the LiteRT runtime reads its sidecar .json through here).
"""
from __future__ import annotations

import json
import os


def read_json(path: str):
    """The parsed JSON file; ValueError naming the file when it is missing or not valid JSON."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise ValueError(f"{path}: file not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: not valid JSON ({err}); the file is damaged: restore or regenerate it") from None


def read_yaml(path: str):
    """The parsed YAML file ({} when empty); ValueError naming the file when it is missing or not valid YAML."""
    import yaml

    try:
        with open(path, encoding="utf-8") as f:
            return yaml.safe_load(f)
    except FileNotFoundError:
        raise ValueError(f"{path}: file not found") from None
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        detail = " ".join(str(err).split())
        raise ValueError(f"{path}: not valid YAML ({detail})") from None


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
