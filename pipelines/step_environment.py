"""Inject each pipeline step's runtime configuration with kfp-kubernetes, exactly as the settings model
declares it (core/settings.py markers, core/runtime_config.py): ConfigMap keys with
`use_config_map_as_env`, Secret keys with `use_secret_as_env`. Not optional: a pod whose ConfigMap or
Secret lacks a key does not start, and Kubernetes names the key in the pod's events.
"""

from __future__ import annotations

from collections import defaultdict

from kfp import dsl, kubernetes

from core.runtime_config import CONFIG_MAP, step_injections
from core.settings import FromSecret


def inject_settings(task: dsl.PipelineTask) -> dsl.PipelineTask:
    """Give `task` (named as its component) every variable its step reads on a cluster."""
    config: dict[str, str] = {}
    secrets: dict[str, dict[str, str]] = defaultdict(dict)
    for injection in step_injections(task.name):
        if isinstance(injection.source, FromSecret):
            secrets[injection.source.secret][injection.source.key] = injection.variable
        else:
            config[injection.variable] = injection.variable
    if config:
        kubernetes.use_config_map_as_env(task, CONFIG_MAP, config)
    for secret, keys in sorted(secrets.items()):
        kubernetes.use_secret_as_env(task, secret, keys)
    return task
