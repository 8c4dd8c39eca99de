"""PyTorch tabular model: a multi-layer perceptron on standardised, one-hot encoded features.

`fit` trains with AdamW and early stopping on the validation loss, then writes the bundle: `model.pt` (the
network's state_dict), `encoder.json` (the `FeatureEncoder`) and `bundle.json` with the architecture in
`training.architecture`. The network is wrapped in a softmax head, so `predict_proba` and the exported ONNX
run the very same module. Binary models learn one logit (BCE loss); the head turns it into two columns via
softmax([0, z]), which equals [1 - sigmoid(z), sigmoid(z)].

A ranker (`label.task: ranking`) is a pointwise scorer: one logit per (query, item) row, trained with BCE
against the graded relevance scaled to [0, 1] (relevance / the training split's largest), and served raw:
its one output column is the score that orders a query's items.

Training runs on `torch_common.training_device()` (a GPU when the pod has one); the returned model is on
the CPU. Threads: `core.training_threads()`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F

from core.bundle import BundleInfo
from core.encoding import FeatureEncoder
from core.frameworks.base import (
    OUTPUT,
    TABULAR_INPUT,
    TabularPredictor,
    class_names,
    describe_bundle,
    input_columns,
    label_codes,
    validation_score,
)
from core.frameworks.torch_common import (
    EarlyStopping,
    describe_device,
    epoch_budget,
    export_onnx,
    resolve_params,
    seeded_torch,
    training_device,
)
from core.spec.model import ModelSpec

WEIGHTS_FILE = "model.pt"
ONNX_FILE = "model.onnx"
# Used when neither the spec nor `params` set them.
DEFAULTS: dict[str, Any] = {
    "hidden_layers": 2,
    "hidden_units": 64,
    "dropout": 0.1,
    "learning_rate": 1e-3,
    "weight_decay": 1e-4,
    "batch_size": 256,
}
PREDICT_BATCH = 8192


# ------------------------------------------------------------------------------------------------- MLP
class MLP(nn.Module):
    """`hidden_layers` x (Linear, ReLU, Dropout), then a linear layer to `n_outputs` logits."""

    def __init__(
        self, n_features: int, hidden_layers: int, hidden_units: int, dropout: float, n_outputs: int
    ):
        super().__init__()
        layers: list[nn.Module] = []
        width = n_features
        for _ in range(hidden_layers):
            layers += [nn.Linear(width, hidden_units), nn.ReLU(), nn.Dropout(dropout)]
            width = hidden_units
        layers.append(nn.Linear(width, n_outputs))
        self.layers = nn.Sequential(*layers)
        self.binary = n_outputs == 1

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features)


class ProbabilityHead(nn.Module):
    """Encoded matrix -> class probabilities (rows x classes): what predict_proba runs.

    With `scaling` (the encoder's model-side standardisation) the head scales its input first; the exported
    graph holds the head without it, behind the preprocessing graph that scales. The vectors
    are non-persistent buffers: they come from `encoder.json`, not from the saved weights.
    """

    def __init__(
        self, network: nn.Module, binary: bool, scaling: FeatureEncoder | None = None, scorer: bool = False
    ):
        super().__init__()
        self.network = network
        self.binary = binary
        self.scorer = scorer
        """A ranker's head: the raw logit is the score (no softmax)."""
        self.scaled = scaling is not None and scaling.scales_in_model
        if self.scaled:
            offsets, factors = scaling.scaling_vectors()
            self.register_buffer("offsets", torch.tensor(offsets, dtype=torch.float32), persistent=False)
            inverse = torch.tensor(1.0 / factors, dtype=torch.float32)
            self.register_buffer("inverse", inverse, persistent=False)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if self.scaled:
            features = (features - self.offsets) * self.inverse  # as FeatureEncoder.scale
        logits = self.network(features)
        if self.scorer:
            return logits
        if self.binary:
            logits = torch.cat([torch.zeros_like(logits), logits], dim=1)
        return torch.softmax(logits, dim=1)


class MlpPredictor(TabularPredictor):
    def __init__(self, info: BundleInfo, encoder: FeatureEncoder, model: ProbabilityHead) -> None:
        super().__init__(info, encoder)
        self.model = model

    def predict_encoded(self, matrix: np.ndarray) -> np.ndarray:
        return _probabilities(self.model, torch.from_numpy(np.ascontiguousarray(matrix, dtype=np.float32)))


def _probabilities(model: ProbabilityHead, features: torch.Tensor) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        return torch.cat([model(chunk) for chunk in features.split(PREDICT_BATCH)]).numpy()


def _loss(logits: torch.Tensor, labels: torch.Tensor, binary: bool) -> torch.Tensor:
    if binary:  # a ranker's labels are its relevance scaled to [0, 1]: soft targets
        return F.binary_cross_entropy_with_logits(logits[:, 0], labels.float())
    return F.cross_entropy(logits, labels)


Data = tuple[torch.Tensor, torch.Tensor]


def _tensors(encoder: FeatureEncoder, spec: ModelSpec, frame: pd.DataFrame, top: int = 1) -> Data:
    """Scaled features (what the network trains on) and label codes; a ranker's relevance over `top`."""
    scaled = encoder.scale(encoder.transform(frame))
    codes = label_codes(spec, frame)
    if spec.label.task == "ranking":
        return torch.from_numpy(scaled), torch.from_numpy(np.minimum(codes / top, 1.0).astype(np.float32))
    return torch.from_numpy(scaled), torch.from_numpy(codes)


def _on(device: torch.device, data: Data) -> Data:
    return data[0].to(device), data[1].to(device)


def _train_epoch(
    net: MLP, optimizer: torch.optim.Optimizer, data: Data, batch_size: int, generator: torch.Generator
) -> None:
    features, labels = data
    net.train()
    # The permutation comes from a CPU generator, so the batch order is the same on every device.
    for rows in torch.randperm(len(features), generator=generator).split(batch_size):
        rows = rows.to(features.device)
        optimizer.zero_grad()
        _loss(net(features[rows]), labels[rows], net.binary).backward()
        optimizer.step()


def _valid_loss(net: MLP, data: Data) -> float:
    net.eval()
    with torch.no_grad():
        return float(_loss(net(data[0]), data[1], net.binary))


def _train(
    spec: ModelSpec,
    hp: dict[str, Any],
    architecture: dict[str, Any],
    data: tuple[Data, Data],
    budget: tuple[int, int],
    device: torch.device,
) -> tuple[MLP, EarlyStopping]:
    """Seeded training loop on `device`; returns the network on the CPU with its best-validation weights."""
    max_epochs, patience = budget
    stopper = EarlyStopping(patience)
    train_data, valid_data = _on(device, data[0]), _on(device, data[1])
    with seeded_torch(spec.training.seed):
        net = MLP(**architecture).to(device)
        optimizer = torch.optim.AdamW(
            net.parameters(), lr=hp["learning_rate"], weight_decay=hp["weight_decay"]
        )
        generator = torch.Generator().manual_seed(spec.training.seed)
        for epoch in range(1, max_epochs + 1):
            _train_epoch(net, optimizer, train_data, int(hp["batch_size"]), generator)
            if stopper.should_stop(epoch, _valid_loss(net, valid_data), net):
                break
    stopper.restore_best(net)
    return net.cpu().eval(), stopper


def fit(
    spec: ModelSpec, train: pd.DataFrame, valid: pd.DataFrame, params: dict[str, Any], out_dir: Path
) -> tuple[MlpPredictor, float]:
    """Train with early stopping on `valid`, write the bundle to `out_dir`; return it and its valid score."""
    if train.empty or valid.empty:
        raise ValueError(f"{spec.name}: the train and validation splits must both have rows")
    started = time.perf_counter()
    hp = resolve_params(spec, params, DEFAULTS)
    columns = input_columns(spec, train)
    encoder = FeatureEncoder.fit(train, columns, standardize=True, scale_in_model=True)
    scorer = spec.label.task == "ranking"
    top = max(int(label_codes(spec, train).max()), 1) if scorer else 1
    data = (_tensors(encoder, spec, train, top), _tensors(encoder, spec, valid, top))
    classes = class_names(spec)
    architecture = {
        "n_features": int(data[0][0].shape[1]),
        "hidden_layers": int(hp["hidden_layers"]),
        "hidden_units": int(hp["hidden_units"]),
        "dropout": float(hp["dropout"]),
        "n_outputs": 1 if scorer or len(classes) == 2 else len(classes),
    }
    max_epochs, patience = epoch_budget(spec, params)
    device = training_device()
    net, stopper = _train(spec, hp, architecture, data, (max_epochs, patience), device)
    model = ProbabilityHead(net, binary=net.binary, scaling=encoder, scorer=scorer).eval()
    score = validation_score(spec, valid, _probabilities(model, torch.from_numpy(encoder.transform(valid))))
    record = {
        "architecture": architecture,
        "scorer": scorer,
        "train_rows": len(train),
        "valid_rows": len(valid),
        "train_seconds": round(time.perf_counter() - started, 3),
        "device": describe_device(device),
        **stopper.summary(max_epochs),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    torch.save(net.state_dict(), out_dir / WEIGHTS_FILE)
    files = [WEIGHTS_FILE, encoder.save(out_dir)]
    info = describe_bundle(spec, columns, files, encoder.raw_inputs, hp, record)
    info.save(out_dir)
    return MlpPredictor(info, encoder, model), score


def load(folder: Path, info: BundleInfo) -> MlpPredictor:
    folder = Path(folder)
    architecture = info.training.get("architecture")
    if not architecture:
        raise ValueError(f"{folder}: bundle.json has no training.architecture for the pytorch model")
    encoder = FeatureEncoder.load(folder)
    net = MLP(**architecture)
    net.load_state_dict(torch.load(folder / WEIGHTS_FILE, weights_only=True))
    scorer = bool(info.training.get("scorer", False))
    model = ProbabilityHead(net, binary=net.binary, scaling=encoder, scorer=scorer).eval()
    return MlpPredictor(info, encoder, model)


def export_triton_artifact(folder: Path, info: BundleInfo, dest_dir: Path) -> str:
    """Write `model.onnx`: the scaled matrix input__0 FP32 [batch, n_features] -> the network and softmax
    head -> output__0 FP32 [batch, n_classes] (a ranker's: its score, [batch, 1]); the export puts the
    version's preprocessing (scaling included) in front of it."""
    predictor = load(folder, info)
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    # The head without its scaling: the preprocessing graph in front of it scales (same arithmetic).
    model = predictor.model
    head = ProbabilityHead(model.network, binary=model.binary, scorer=model.scorer).eval()
    example = torch.zeros(2, int(info.training["architecture"]["n_features"]))
    batch_axis = {0: "batch"}
    export_onnx(
        head,
        (example,),
        dest_dir / ONNX_FILE,
        input_names=[TABULAR_INPUT],
        output_names=[OUTPUT],
        dynamic_axes={TABULAR_INPUT: batch_axis, OUTPUT: batch_axis},
    )
    return ONNX_FILE
