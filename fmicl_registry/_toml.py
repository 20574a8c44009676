"""Reading TOML files with errors that name the file (spec files of every kind)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any


def loads_toml(text: str, where: str, error: type[Exception]) -> dict[str, Any]:
    """``text`` parsed as TOML; invalid TOML raises ``error`` naming ``where``.

    Example:
        >>> loads_toml('a = 1', "x.toml", ValueError)
        {'a': 1}
        >>> loads_toml('a = ', "x.toml", ValueError)
        Traceback (most recent call last):
        ...
        ValueError: x.toml: not valid TOML: ...
    """
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise error(f"{where}: not valid TOML: {err}") from None
    except RecursionError:
        raise error(f"{where}: not valid TOML here: nested too deeply") from None


def read_toml(path: Path, what: str, error: type[Exception]) -> dict[str, Any]:
    """The TOML file ``path`` (a ``what``: "spec", "divergence spec"), or ``error`` saying
    why it cannot be read or parsed."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise error(f"cannot read {what} {path}: {err.strerror}") from None
    except UnicodeDecodeError as err:
        raise error(
            f"cannot read {what} {path}: not UTF-8 text (byte {err.start}); save it as UTF-8"
        ) from None
    return loads_toml(text, str(path), error)
