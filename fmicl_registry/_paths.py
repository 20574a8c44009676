"""Where fmicl-registry keeps files it can make again: the user's cache folder."""

from __future__ import annotations

import os
from pathlib import Path


def user_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/fmicl-registry``, else ``~/.cache/fmicl-registry``.

    Read at call time. As the XDG Base Directory specification says, a relative
    ``XDG_CACHE_HOME`` is ignored.

    Example:
        >>> import os
        >>> from fmicl_registry._paths import user_cache_dir
        >>> saved = os.environ.get("XDG_CACHE_HOME")
        >>> os.environ["XDG_CACHE_HOME"] = "/var/cache/me"
        >>> str(user_cache_dir())
        '/var/cache/me/fmicl-registry'
        >>> os.environ["XDG_CACHE_HOME"] = "relative/path"
        >>> user_cache_dir() == Path("~/.cache/fmicl-registry").expanduser()
        True
        >>> if saved is None:
        ...     del os.environ["XDG_CACHE_HOME"]
        ... else:
        ...     os.environ["XDG_CACHE_HOME"] = saved
    """
    base = os.environ.get("XDG_CACHE_HOME", "").strip()
    if base and Path(base).is_absolute():
        return Path(base) / "fmicl-registry"
    return Path("~/.cache/fmicl-registry").expanduser()
