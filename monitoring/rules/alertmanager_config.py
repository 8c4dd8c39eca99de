"""The committed Alertmanager configuration, optionally pointed at another retrain trigger.

The file `manifests/monitoring/alertmanager.yaml` is the one configuration; local mode only swaps the
`retrain` receiver's webhook URL and token file for loopback ones:

    from monitoring.rules.alertmanager_config import render

    text = render(url="http://127.0.0.1:8085/v1/alerts", token_file=home / "secrets/retrain-token")

Comments are lost in the rendered text (a YAML load/dump); the committed file keeps them.
"""

from __future__ import annotations

from os import PathLike
from pathlib import Path
from typing import Any

import yaml

from core.paths import REPO_ROOT

DEFAULT_CONFIG = REPO_ROOT / "manifests" / "monitoring" / "alertmanager.yaml"
RETRAIN_RECEIVER = "retrain"


class AlertmanagerConfigError(ValueError):
    """The configuration file lacks what `render` rewrites; the message names the file."""


def load_config(path: str | PathLike[str] = DEFAULT_CONFIG) -> dict[str, Any]:
    path = Path(path)
    try:
        config = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise AlertmanagerConfigError(f"{path}: cannot read: {' '.join(str(error).split())}") from error
    if not isinstance(config, dict):
        raise AlertmanagerConfigError(f"{path}: not an Alertmanager configuration (a YAML mapping)")
    return config


def retrain_webhook(config: dict[str, Any], source: str | PathLike[str] = DEFAULT_CONFIG) -> dict[str, Any]:
    """The (only) webhook of the `retrain` receiver, as a mutable mapping inside `config`."""
    for receiver in config.get("receivers") or []:
        if receiver.get("name") == RETRAIN_RECEIVER:
            webhooks = receiver.get("webhook_configs") or []
            if len(webhooks) != 1:
                raise AlertmanagerConfigError(
                    f"{source}: receiver {RETRAIN_RECEIVER!r} must have exactly one webhook_config"
                )
            return webhooks[0]
    raise AlertmanagerConfigError(f"{source}: no receiver named {RETRAIN_RECEIVER!r}")


def render(
    url: str | None = None,
    token_file: str | PathLike[str] | None = None,
    source: str | PathLike[str] = DEFAULT_CONFIG,
) -> str:
    """The configuration as YAML text, with the retrain webhook's `url` and bearer `credentials_file`
    replaced where given (unchanged otherwise)."""
    config = load_config(source)
    webhook = retrain_webhook(config, source)
    if url is not None:
        webhook["url"] = url
    if token_file is not None:
        authorization = webhook.setdefault("http_config", {}).setdefault("authorization", {})
        authorization["type"] = "Bearer"
        authorization["credentials_file"] = str(token_file)
    return yaml.safe_dump(config, sort_keys=False, width=1000)
