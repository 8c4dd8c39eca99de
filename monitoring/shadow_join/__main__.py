"""`python -m monitoring.shadow_join [--host H] [--port P] [--spec-dir DIR] [--pending-s S] [--max-pending N]
[--window W]`:
the cluster's shadow comparator (manifests/shadow-comparator). The shadow InferenceService's logger posts
to it; a Trigger per event type brings it the live service's events (inference/deploy/shadow.py renders
both)."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

from core.errors import SpecError
from core.spec.model import load_specs
from inference.router.shadow_compare import DEFAULT_WINDOW, ShadowComparator
from monitoring.shadow_join.app import DEFAULT_MAX_BODY_BYTES, create_app
from monitoring.shadow_join.join import DEFAULT_MAX_PENDING, DEFAULT_PENDING_S, ShadowJoin


def positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m monitoring.shadow_join", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0 in a container)")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument(
        "--spec-dir", help="model specs: events of other models are refused (default: $MLOPS_SPEC_DIR)"
    )
    parser.add_argument(
        "--pending-s",
        type=positive,
        default=DEFAULT_PENDING_S,
        help="how long a request waits for its other side's events (the broker's delivery delay and retries)",
    )
    parser.add_argument("--max-pending", type=int, default=DEFAULT_MAX_PENDING, help="requests held at most")
    parser.add_argument("--window", type=int, default=DEFAULT_WINDOW, help="rows in the rank correlation")
    parser.add_argument("--max-body-bytes", type=int, default=DEFAULT_MAX_BODY_BYTES)
    parser.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    args = parser.parse_args(argv)
    for name in ("max_pending", "window", "max_body_bytes"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    import uvicorn
    from prometheus_client import CollectorRegistry

    args = parse_args(argv)
    try:
        models = frozenset(spec.name for spec in load_specs(args.spec_dir))
    except SpecError as error:
        raise SystemExit(f"error: {' '.join(str(error).split())}") from None
    log_format = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    logging.basicConfig(level=args.log_level.upper(), format=log_format)
    registry = CollectorRegistry()
    comparator = ShadowComparator(registry, args.window)
    join = ShadowJoin(comparator, registry, args.pending_s, args.max_pending, models=models)
    uvicorn.run(create_app(join, registry, args.max_body_bytes), host=args.host, port=args.port)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
