"""Serve one model's KServe transformer (REST and gRPC, Open Inference Protocol) until SIGTERM.

    python -m inference.transformer --model-name conversion-xgboost --predictor-host HOST:PORT \\
        --protocol v2 --feature-repo feature_repo [--model-version 3] [--http-port 8080]

KServe's controller appends `--model_name`, `--predictor_host` and `--http_port` to a custom transformer's
arguments (and --workers with containerConcurrency); they are accepted as aliases of the kebab-case flags.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.errors import SpecError
from core.http_body import DEFAULT_READ_TIMEOUT_S
from core.json_errors import install_json_errors
from core.spec.model import ModelSpec, load_spec, spec_directory

DEFAULT_MAX_BODY_BYTES = 1 << 20  # 1 MiB: ~10,000 entity rows as JSON, far above any batch we serve


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m inference.transformer", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--model-name", "--model_name", required=True, help="public name = Triton model name")
    parser.add_argument(
        "--predictor-host", "--predictor_host", required=True, help="HOST:PORT of the predictor"
    )
    parser.add_argument(
        "--protocol", choices=["v2", "grpc-v2"], default="v2", help="how to call the predictor"
    )
    parser.add_argument("--feature-repo", type=Path, required=True, help="Feast repository folder")
    parser.add_argument(
        "--feature-store-yaml", type=Path, help="Feast config (default: <feature-repo>/feature_store.yaml)"
    )
    parser.add_argument("--spec", type=Path, help="model spec (default: <spec dir>/<model-name>.yaml)")
    parser.add_argument(
        "--model-version", help="served version: returned in responses, accepted in /versions/ paths"
    )
    parser.add_argument("--http-port", "--http_port", type=int, default=8080)
    parser.add_argument("--grpc-port", "--grpc_port", type=int, default=8081)
    parser.add_argument("--max-body-bytes", type=int, default=DEFAULT_MAX_BODY_BYTES)
    parser.add_argument(
        "--read-timeout-s", type=float, default=DEFAULT_READ_TIMEOUT_S, help="a request body's, or 408"
    )
    # KServe appends --workers when containerConcurrency is set; more processes would each need the model.
    parser.add_argument("--workers", type=int, choices=[1], default=1, help="server processes (only 1)")
    parser.add_argument(
        "--max-rows", type=int, help="rows per request (default: the spec's serving.max_batch_size)"
    )
    return parser


def load_model_spec(model_name: str, path: Path | None) -> ModelSpec:
    spec = load_spec(path or spec_directory() / f"{model_name}.yaml")
    if spec.name != model_name:
        raise SpecError(
            path or "", f"names model {spec.name!r}, the transformer serves {model_name!r}", "name"
        )
    if not spec.inputs.feature_service:
        raise SpecError(
            path or spec_directory() / f"{model_name}.yaml",
            "names no feature service: only feature-service models get a Feast transformer",
            "inputs.feature_service",
        )
    return spec


def serve(args: argparse.Namespace) -> None:
    """Build the transformer and run KServe's ModelServer (imports kserve: it parses sys.argv on import)."""
    from kserve import ModelServer
    from kserve.model_server import app
    from kserve.predictor_config import PredictorConfig

    from core.frameworks.base import class_names
    from inference.transformer.features import OnlineFeatures
    from inference.transformer.guard import RequestGuard
    from inference.transformer.model import FeastTransformer

    spec = load_model_spec(args.model_name, args.spec)
    features = OnlineFeatures.open(
        args.feature_repo, spec.inputs.feature_service, spec.inputs.entity_keys, args.feature_store_yaml
    )
    max_rows = args.max_rows or spec.serving.max_batch_size
    model = FeastTransformer(
        spec.name, class_names(spec), features, max_rows, args.model_version, spec.label.item_column
    )
    model.load()

    # FastAPI answers 422 and unknown paths with its own bodies; OIP clients expect {"error": one line}.
    install_json_errors(app)
    app.add_middleware(
        RequestGuard,
        max_body_bytes=args.max_body_bytes,
        served_version=args.model_version,
        read_timeout_s=args.read_timeout_s,
    )
    predictor = PredictorConfig(predictor_host=args.predictor_host, predictor_protocol=args.protocol)
    server = ModelServer(
        http_port=args.http_port, grpc_port=args.grpc_port, workers=1, predictor_config=predictor
    )
    server.start([model])


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        serve(args)
    except (SpecError, FileNotFoundError, ValueError, LookupError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
