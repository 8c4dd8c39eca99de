"""Inject each pipeline step's runtime configuration with kfp-kubernetes, exactly as the settings model
declares it (core/settings.py markers, core/runtime_config.py): ConfigMap keys with
`use_config_map_as_env`, Secret keys with `use_secret_as_env`, and the model specs ConfigMap as a volume
where MLOPS_SPEC_DIR points. Not optional: a pod whose ConfigMap or
Secret lacks a key does not start, and Kubernetes names the key in the pod's events.
"""

from __future__ import annotations

from collections import defaultdict

from kfp import dsl, kubernetes

from core.runtime_config import CONFIG_MAP, SPECS_CONFIG_MAP, step_injections
from core.settings import SPECS_MOUNT, FromSecret, variable


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
    if variable("spec_dir") in config:  # the specs themselves, where that variable says they are
        kubernetes.use_config_map_as_volume(task, SPECS_CONFIG_MAP, mount_path=SPECS_MOUNT)
    return task
