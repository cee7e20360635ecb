"""Turning raw config (a stack file, Pulumi config, or a dict from Python) into validated models."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from jetstream_binderhub.config.cluster import ClusterStackConfig, profile_problems, resolve_defaults
from jetstream_binderhub.errors import ConfigError, Problem, problems_from_validation_error
from jetstream_binderhub.profiles import load_profile

CLUSTER_KEYS = ("profile", "cluster")


def parse_cluster_stack(raw: Mapping[str, Any], source: str | None = None) -> ClusterStackConfig:
    """Validate the cluster layer's config (keys without namespace) and fill the profile's defaults.

    Every problem is collected before raising, so the user fixes the file in one pass.
    """
    unknown = sorted(set(raw) - set(CLUSTER_KEYS))
    problems = [Problem(k, "unknown key for the cluster layer (expected: profile, cluster)") for k in unknown]
    known = {k: v for k, v in raw.items() if k in CLUSTER_KEYS}
    try:
        cfg = ClusterStackConfig.model_validate(known)
    except ValidationError as exc:
        raise ConfigError(problems + problems_from_validation_error(exc), source) from None
    try:
        profile = load_profile(cfg.profile)
    except ConfigError as exc:
        raise ConfigError(problems + exc.problems, source) from None
    problems += profile_problems(cfg, profile)
    if problems:
        raise ConfigError(problems, source)
    return resolve_defaults(cfg, profile)
