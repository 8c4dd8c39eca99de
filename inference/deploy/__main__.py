"""`python -m inference.deploy render|shadow|end-shadow|canary|promote|rollback --model NAME
[--namespace NS] [--out DIR | --kubernetes]`

render: the champion alone (first deploy); printed as YAML unless --out or --kubernetes applies it.
shadow: copy --percent of the champion's requests to the challenger (Standard mode; its answers are compared
by the shadow comparator, never returned); end-shadow (= render) and canary delete its objects first.
canary / promote / rollback: the rollout steps (rollout.py); they need --out or --kubernetes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import get_args

import yaml

from core.errors import SpecError
from core.registry import CHALLENGER, CHAMPION, configure_tracking, resolve_alias
from core.settings import DeploymentMode, settings
from core.spec.model import ModelSpec, load_specs
from inference.canary.shadow_verdict import READY, describe, fetch_verdict
from inference.deploy.apply import Applier, FileApplier, KubernetesApplier
from inference.deploy.payload_logs import PayloadLogStore
from inference.deploy.render import render_inference_service
from inference.deploy.rollout import Rollout
from inference.deploy.shadow import DEFAULT_GATEWAY, DEFAULT_INGRESS_DOMAIN

DEFAULT_NAMESPACE = "mlops"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m inference.deploy", description=__doc__.splitlines()[0])
    parser.add_argument(
        "command", choices=["render", "shadow", "end-shadow", "canary", "promote", "rollback"]
    )
    parser.add_argument("--model", required=True, help="model spec name (pipelines/models/<name>.yaml)")
    parser.add_argument("--namespace", default=DEFAULT_NAMESPACE)
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--out", type=Path, help="write objects under this folder (local mode)")
    target.add_argument("--kubernetes", action="store_true", help="server-side apply to the cluster")
    parser.add_argument(
        "--reason", default="rolled back by hand", help="rollback: why (tagged on the version)"
    )
    parser.add_argument(
        "--deployment-mode",
        choices=get_args(DeploymentMode),
        help="KServe deployment mode to render for (default: $KSERVE_DEPLOYMENT_MODE, else Knative)",
    )
    parser.add_argument(
        "--percent", type=int, default=100, help="shadow: share of the infer requests copied (0..100)"
    )
    parser.add_argument(
        "--gateway", default=DEFAULT_GATEWAY, help="shadow: the KServe Gateway, namespace/name"
    )
    parser.add_argument(
        "--ingress-domain", default=DEFAULT_INGRESS_DOMAIN, help="shadow: KServe's ingressDomain"
    )
    parser.add_argument(
        "--shadow-metrics-url",
        help="canary: start only when the challenger's shadow run passes the spec's canary.shadow criteria"
        " (the shadow comparator's /metrics)",
    )
    parser.add_argument("--logger-url", help="where KServe's logger posts payloads (default: the broker)")
    parser.add_argument("--spec-dir", type=Path, help="model spec folder (default: $MLOPS_SPEC_DIR or repo)")
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or local)")
    parser.add_argument("--artifacts-destination", help="store behind mlflow-artifacts:/ URIs (default: env)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except (LookupError, ValueError, SpecError, FileNotFoundError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


def run(args: argparse.Namespace) -> int:
    [spec] = load_specs(args.spec_dir, names=[args.model])
    configure_tracking(args.tracking_uri)
    applier = _applier(args)
    mode = args.deployment_mode or settings().kserve_deployment_mode
    store = PayloadLogStore.from_settings()  # PAYLOAD_LOG_STORE: batches to object storage
    if applier is None:
        if args.command != "render":
            raise ValueError(f"deploy: {args.command} changes the service: pass --out DIR or --kubernetes")
        champion = resolve_alias(spec.name, CHAMPION, args.artifacts_destination)
        if champion is None:
            raise LookupError(f"deploy: {spec.name} has no {CHAMPION!r} version in the registry")
        service = render_inference_service(
            spec, champion, None, args.namespace, logger_url=args.logger_url, mode=mode, payload_store=store
        )
        print(yaml.safe_dump(service, sort_keys=False), end="")
        return 0
    if args.command == "canary" and args.shadow_metrics_url:
        _require_shadow_go(spec, args.shadow_metrics_url, args.artifacts_destination)
    rollout = Rollout(
        applier, args.namespace, args.logger_url, args.artifacts_destination, mode=mode, payload_store=store
    )
    steps = {
        "render": rollout.deploy,
        "end-shadow": rollout.deploy,  # the champion alone: a shadow's objects deleted first
        "shadow": lambda s: rollout.start_shadow(s, args.percent, args.gateway, args.ingress_domain),
        "canary": rollout.start_canary,
        "promote": rollout.promote,
        "rollback": lambda s: rollout.rollback(s, args.reason),
    }
    result = steps[args.command](spec)
    canary = f", challenger v{result.challenger.version}" if result.challenger else ""
    print(f"{result.model}: {result.state.value}: champion v{result.champion.version}{canary}")
    return 0


def _require_shadow_go(spec: ModelSpec, metrics_url: str, artifacts_destination: str | None) -> None:
    """Raise unless the challenger's shadow run says "start the canary" (nothing is applied otherwise)."""
    import httpx

    challenger = resolve_alias(spec.name, CHALLENGER, artifacts_destination)
    if challenger is None:
        raise LookupError(f"deploy: {spec.name} has no {CHALLENGER!r} version in the registry")
    if spec.canary.shadow is None:
        raise ValueError(
            f"deploy: {spec.name}: --shadow-metrics-url needs canary.shadow criteria in the spec"
        )
    try:
        verdict = fetch_verdict(spec.canary.shadow, metrics_url, spec.name, challenger.version)
    except httpx.HTTPError as error:
        raise RuntimeError(f"deploy: {spec.name}: shadow metrics at {metrics_url}: {error}") from None
    if verdict.exit_code != READY:
        raise RuntimeError(f"deploy: {spec.name}: shadow v{challenger.version}: {describe(verdict)}")


def _applier(args: argparse.Namespace) -> Applier | None:
    if args.kubernetes:
        return KubernetesApplier()
    if args.out is not None:
        return FileApplier(args.out)
    return None


if __name__ == "__main__":
    sys.exit(main())
