"""The options of the prompt checks and their validation: light (no ``datasets``), for the options and CLI."""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError, flag, option

DEFAULT_THRESHOLD = 0.9
"""The default cosine threshold, and the value of ``--dedup`` given without one."""
KEEP = ("first", "last")
"""Which row a duplicate group keeps."""


def check_threshold(threshold: Any, name: str = "threshold") -> float:
    """``threshold`` as a float in (0, 1], else a :class:`ConfigError` naming ``name``."""
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 < threshold <= 1:
        raise ConfigError(
            f"{name} must be a cosine similarity in (0, 1] (0.9 by default; 1 removes identical embeddings "
            f"only), got {threshold!r}"
        )
    return float(threshold)


def check_options(opts: Any) -> None:
    """Refuse ``curate``'s prompt-check options out of range, or given without ``dedup``/``decontaminate``."""
    if opts.dedup is not None:
        check_threshold(opts.dedup, flag("dedup"))
    if isinstance(opts.decontaminate, str):
        opts.decontaminate = [opts.decontaminate]
    if opts.decontaminate is not None and not len(opts.decontaminate):
        opts.decontaminate = None
    check_threshold(opts.decontaminate_threshold, flag("decontaminate_threshold"))
    if opts.dedup_keep not in KEEP:
        raise ConfigError(
            f"{flag('dedup_keep')} must be one of {', '.join(map(repr, KEEP))}, got {opts.dedup_keep!r}"
        )
    active = opts.dedup is not None or opts.decontaminate is not None
    if not active:
        defaults = {"decontaminate_threshold": DEFAULT_THRESHOLD, "dedup_keep": KEEP[0]}
        changed = [name for name, default in defaults.items() if getattr(opts, name) != default]
        changed += ["dedup_embedder"] if opts.dedup_embedder is not None else []
        if changed:
            flags = ", ".join(flag(n) for n in changed)
            raise ConfigError(f"{flags} only apply with {flag('dedup')} or {flag('decontaminate')}")
    if active and opts.engine != "datasets":
        raise ConfigError(
            f"{flag('dedup')} and {flag('decontaminate')} run with the default engine only "
            f"({option('engine', 'datasets')}) for now"
        )
