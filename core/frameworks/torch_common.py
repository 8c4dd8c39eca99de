"""Torch helpers both deep-learning trainers use: parameters and epoch budget, the device, seeding, early
stopping and ONNX export.

Device: `training_device()` (a GPU when the pod has one). Training runs there and the trainers move the
model back to the CPU before returning it, so prediction, saving and ONNX export are the same on every
machine. GPU kernels are not bit-for-bit deterministic: a GPU run and a CPU run of one seed agree in
quality, not in every weight.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from core.frameworks.base import training_threads
from core.settings import settings, variable
from core.spec.model import ModelSpec

DEFAULT_MAX_EPOCHS = 30
DEFAULT_PATIENCE = 5
# A validation loss must drop by more than this to count as an improvement (ends slow creeping).
MIN_DELTA = 1e-4
ONNX_OPSET = 18  # the dynamo exporter's lowest; ONNX Runtime has run opset 18 since 1.14


def resolve_params(spec: ModelSpec, params: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """Defaults, overridden by the spec's hyperparameters, overridden by `params` (e.g. a search trial)."""
    return {**defaults, **dict(spec.training.hyperparameters), **params}


def epoch_budget(spec: ModelSpec, params: dict[str, Any]) -> tuple[int, int]:
    """(max_epochs, patience): `params` may override the spec, as tests and searches do."""
    max_epochs = params.get("max_epochs") or spec.training.max_epochs or DEFAULT_MAX_EPOCHS
    patience = params.get("early_stopping_rounds") or spec.training.early_stopping_rounds or DEFAULT_PATIENCE
    return int(max_epochs), int(patience)


def training_device() -> torch.device:
    """Where deep-learning models train: `MLOPS_TRAIN_DEVICE` = auto (default: CUDA when present), cpu,
    cuda or cuda:N. Asking for CUDA where there is none is an error, not a silent CPU run."""
    value = settings().train_device  # validated there: auto, cpu, cuda or cuda:N
    if value == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(value)
    if device.type == "cuda" and not torch.cuda.is_available():
        name = variable("train_device")
        raise ValueError(f"{name}={value} but torch sees no CUDA device (torch {torch.__version__})")
    return device


def describe_device(device: torch.device) -> str:
    """For the training record: `cpu` or `cuda:0 (NVIDIA H100 80GB HBM3)`."""
    if device.type != "cuda":
        return "cpu"
    index = device.index if device.index is not None else torch.cuda.current_device()
    return f"cuda:{index} ({torch.cuda.get_device_name(index)})"


@contextmanager
def seeded_torch(seed: int) -> Iterator[None]:
    """Seed torch's global RNG (weight init, dropout) and use `training_threads()`; both restored after."""
    previous = torch.get_num_threads()
    torch.set_num_threads(training_threads())
    try:
        # manual_seed seeds the CUDA generators as well; only the CPU one is restored afterwards.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            yield
    finally:
        torch.set_num_threads(previous)


@dataclass
class EarlyStopping:
    """Remembers the best weights on validation; says stop after `patience` epochs without improvement."""

    patience: int
    best_loss: float = math.inf
    best_epoch: int = 0
    best_state: dict[str, torch.Tensor] | None = None
    history: list[float] = field(default_factory=list)

    def should_stop(self, epoch: int, valid_loss: float, module: nn.Module) -> bool:
        self.history.append(round(valid_loss, 6))
        if valid_loss < self.best_loss - MIN_DELTA:
            self.best_loss, self.best_epoch = valid_loss, epoch
            self.best_state = {k: v.detach().clone() for k, v in module.state_dict().items()}
        # Progress for the step's log (the KFP UI streams it; the local run echoes it).
        print(
            f"[train] epoch {epoch}: validation loss {valid_loss:.4f} "
            f"(best {self.best_loss:.4f} at epoch {self.best_epoch})",
            flush=True,
        )
        return epoch - self.best_epoch >= self.patience

    def restore_best(self, module: nn.Module) -> None:
        if self.best_state is not None:
            module.load_state_dict(self.best_state)

    def summary(self, max_epochs: int) -> dict[str, Any]:
        return {
            "max_epochs": max_epochs,
            "patience": self.patience,
            "epochs_trained": len(self.history),
            "best_epoch": self.best_epoch,
            "best_valid_loss": self.best_loss,
            "stopped_early": len(self.history) < max_epochs,
            "valid_loss_history": self.history,
        }


def export_onnx(module: nn.Module, example: tuple[torch.Tensor, ...], path: Path, **names: Any) -> None:
    """Export with torch's dynamo-based exporter (torch.export + onnxscript), the maintained path since
    PyTorch 2.9; the TorchScript-based one (`dynamo=False`) is deprecated and blocks torch upgrades.
    `names` are `input_names`, `output_names` and `dynamic_axes` (turned into dynamic shapes by torch)."""
    module.eval()
    registration = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registration.level
    registration.setLevel(logging.ERROR)  # "torchvision is not installed" notices: we export no vision ops
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # notices about dynamic_axes being converted to dynamic shapes
            program = torch.onnx.export(
                module,
                example,
                dynamo=True,
                opset_version=ONNX_OPSET,
                verbose=False,
                external_data=False,
                **names,
            )
    finally:
        registration.setLevel(level)
    program.save(str(path))
