"""The training pipeline: features -> validate -> train -> evaluate (+ fit the drift detector) -> gate ->
export -> register -> deploy as canary -> canary analysis -> promote or roll back, in parallel per model.
The same definition is compiled for Kubeflow Pipelines and run by `kfp.local`.

Release steps: `serving_mode` "cluster" (the compiled default) applies KServe InferenceServices and reads
Prometheus; "local" (pipelines.local_run) uses the live local serving runtime. A first champion has no
canary: deploy returns "no-canary" and the two later steps pass it on doing nothing (a condition on it
would be nested in the gate's branch, which kfp.local cannot run).

Deep-learning models train on a GPU on the cluster: each iteration's `resolve_spec` validates the spec
and returns the number of GPUs its training asks for ("1" or "0"), which feeds the train task's
accelerator limit at run time. (Branching with dsl.If/Else instead would need `dsl.OneOf` to merge, and
kfp 2.17's local runner resolves neither OneOf nor a condition nested in a branch inside ParallelFor.)
"""

from kfp import dsl

from components.analyze_canary.component import analyze_canary
from components.deploy_canary.component import deploy_canary
from components.evaluate.component import evaluate
from components.export_triton.component import export_triton
from components.fit_detector.component import fit_detector
from components.gate.component import gate
from components.load_features.component import load_features
from components.promote_or_rollback.component import promote_or_rollback
from components.register.component import register
from components.resolve_spec.component import resolve_spec
from components.train.component import train
from components.validate_data.component import validate_data
from pipelines.step_environment import inject_settings

PIPELINE_NAME = "training-pipeline"
DEFAULT_MODELS = ["conversion-mlp", "conversion-sklearn", "conversion-xgboost", "intent-transformer"]


def _step(task: dsl.PipelineTask) -> dsl.PipelineTask:
    """Every step: its runtime configuration injected from the ConfigMap and Secrets, and no caching (a
    run, scheduled or a retrain, must recompute, and runs are created against the deployed
    PipelineVersion, whose compiled caching options no client can rewrite)."""
    return inject_settings(task).set_caching_options(False)


def _retry_io(task: dsl.PipelineTask) -> dsl.PipelineTask:
    """Steps that talk to Feast or MLflow retry transient failures with exponential backoff."""
    return task.set_retry(
        num_retries=3, backoff_duration="30s", backoff_factor=2.0, backoff_max_duration="600s"
    )


def _train_and_release(model, start, end, reason, gpus, serving_mode) -> None:
    features = _step(_retry_io(load_features(model=model, start=start, end=end)))
    training_set = features.outputs["training_set"]
    validation = _step(validate_data(model=model, training_set=training_set))

    trained = _step(train(model=model, training_set=training_set)).after(validation)
    trained.set_cpu_request("2").set_memory_request("4G").set_memory_limit("8G")
    trained.set_accelerator_type("nvidia.com/gpu").set_accelerator_limit(gpus.output).after(gpus)
    bundle, test_set = trained.outputs["bundle"], trained.outputs["test_set"]
    # The drift detector for this training set, fitted next to evaluation (serving image: alibi-detect).
    detector = _step(fit_detector(model=model, training_set=training_set)).after(trained)
    detector.set_cpu_request("1").set_memory_request("2G").set_memory_limit("4G")

    evaluation = evaluate(
        model=model,
        lineage=features.outputs["Output"],
        pipeline_run=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
        bundle=bundle,
        test_set=test_set,
        training_set=training_set,
    )
    _step(_retry_io(evaluation)).set_memory_limit("8G")
    decision = _step(
        _retry_io(
            gate(
                model=model,
                mlflow_run_id=evaluation.outputs["Output"],
                evaluation=evaluation.outputs["evaluation"],
                test_set=test_set,
            )
        )
    )

    with dsl.If(decision.outputs["Output"] == True, name="gate-passed"):  # noqa: E712 (KFP condition)
        exported = _step(export_triton(model=model, bundle=bundle, test_set=test_set))
        registration = register(
            model=model,
            mlflow_run_id=evaluation.outputs["Output"],
            reason=reason,
            bundle=bundle,
            evaluation=evaluation.outputs["evaluation"],
            repository=exported.outputs["repository"],
            detector=detector.outputs["detector"],
            training_set=training_set,
        )
        _step(_retry_io(registration))
        _release(model, registration, serving_mode)


def _release(model, registration: dsl.PipelineTask, serving_mode) -> None:
    """Canary the registered version (or serve a first champion alone), analyse, promote or roll back.
    No retries: a repeated analysis would send its traffic again; each step fails with a one-line cause."""
    version = registration.outputs["version"]
    deployed = _step(
        deploy_canary(
            model=model, version=version, alias=registration.outputs["alias"], serving_mode=serving_mode
        )
    )
    analysis = _step(
        analyze_canary(model=model, version=version, deployment=deployed.output, serving_mode=serving_mode)
    )
    _step(
        promote_or_rollback(model=model, version=version, decision=analysis.output, serving_mode=serving_mode)
    )


@dsl.pipeline(
    name=PIPELINE_NAME,
    description="Train, evaluate, gate and register each listed model, then canary, analyse and release it.",
)
def training_pipeline(
    models: list = DEFAULT_MODELS,
    start: str = "",
    end: str = "",
    reason: str = "manual",
    serving_mode: str = "cluster",
) -> None:
    """`models`: model spec names; `start`/`end`: ISO data window (empty: each spec's window);
    `reason`: why this run exists (manual, schedule, or the alert that asked for it); `serving_mode`:
    where the release steps deploy ("cluster": KServe; "local": the local serving runtime)."""
    with dsl.ParallelFor(models, parallelism=4) as model:
        resolved = _step(resolve_spec(model=model))
        _train_and_release(model, start, end, reason, gpus=resolved, serving_mode=serving_mode)
