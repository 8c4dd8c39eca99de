from kfp import dsl

from core.images import PLATFORM_IMAGE


@dsl.component(base_image=PLATFORM_IMAGE, install_kfp_package=False)
def analyze_canary(model: str, version: str, deployment: str, serving_mode: str) -> str:
    """Compare the canary with the stable version over the spec's window (error rate, p95 latency, and
    locally the prediction shift of demo traffic sent with tritonclient over HTTP and gRPC), decide with
    the spec's criteria and record decision and evidence on the MLflow version. Returns the verdict
    ("promote", "rollback", "inconclusive"), or "no-canary" when `deployment` started none.
    """
    from core.runtime_config import check_step_environment

    check_step_environment("analyze-canary")  # first: before the heavy imports

    from components.analyze_canary.step import run

    return run(model=model, version=version, deployment=deployment, serving_mode=serving_mode)
