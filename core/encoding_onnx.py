"""A version's fitted preprocessing as an ONNX graph: raw named features in, the estimator's matrix out.

The graph computes exactly what the in-process predictor computes before its estimator,
`FeatureEncoder.scale(FeatureEncoder.transform(rows))`, with ONNX-ML's preprocessing operators, the ones
skl2onnx emits for scikit-learn's SimpleImputer, OneHotEncoder and StandardScaler:

    numeric inputs  --Concat--> Imputer (NaN -> training median)  --+
    each categorical input --OneHotEncoder (unseen/"" -> zeros)--> --+--Concat--> Scaler --> matrix

Built from the encoder's fitted values rather than from refitted scikit-learn objects, because the encoder
is what training used: the same medians, category lists and float32 scaling arithmetic (subtract, then
multiply by the reciprocal) that `FeatureEncoder.scale` documents. `with_preprocessing` puts the graph in
front of an estimator graph that takes the matrix (scikit-learn via skl2onnx, the torch network), so the
served model takes raw features; the XGBoost export serves it as the first step of a Triton ensemble.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from core.encoding import FeatureEncoder

if TYPE_CHECKING:
    import onnx

PREPROCESSED = "preprocessed"
"""The matrix output of a stand-alone preprocessing model (the ensemble's first step)."""
ML_DOMAIN = "ai.onnx.ml"
ML_OPSET = 3  # Imputer, OneHotEncoder and Scaler are unchanged since ai.onnx.ml 1
DEFAULT_OPSET = 17  # what Triton 25.10's ONNX Runtime and the local one both run


class LegacyBundleError(ValueError):
    """A bundle whose encoder standardises before the model (saved before self-contained versions)."""


def preprocessing_model(
    encoder: FeatureEncoder,
    output: str = PREPROCESSED,
    opsets: dict[str, int] | None = None,
    ir_version: int | None = None,
) -> onnx.ModelProto:
    """The stand-alone preprocessing graph: one input per raw feature, `output` FP32 [batch, width]."""
    import onnx
    from onnx import TensorProto, helper

    if encoder.means and not encoder.scale_in_model:
        raise LegacyBundleError(
            "the bundle's encoder standardises on the wire (saved before versions carried their own "
            "preprocessing): re-train before the next canary"
        )
    inputs, nodes, blocks = [], [], []
    if encoder.numeric:
        inputs += [_input(name, TensorProto.FLOAT) for name in encoder.numeric]
        nodes.append(helper.make_node("Concat", list(encoder.numeric), ["pre_numeric"], axis=1))
        medians = np.array([encoder.medians[c] for c in encoder.numeric], dtype=np.float32)
        nodes.append(
            helper.make_node(
                "Imputer",
                ["pre_numeric"],
                ["pre_imputed"],
                domain=ML_DOMAIN,
                imputed_value_floats=medians.tolist(),
                replaced_value_float=float("nan"),
            )
        )
        blocks.append("pre_imputed")
    for index, (column, categories) in enumerate(encoder.categorical.items()):
        inputs.append(_input(column, TensorProto.STRING))
        if not categories:  # a column with no category seen adds no one-hot column (as `transform`)
            continue
        hot, flat = f"pre_onehot_{index}", f"pre_block_{index}"
        nodes.append(
            helper.make_node(
                "OneHotEncoder", [column], [hot], domain=ML_DOMAIN, cats_strings=list(categories), zeros=1
            )
        )
        nodes.append(helper.make_node("Flatten", [hot], [flat], axis=1))  # [batch, 1, C] -> [batch, C]
        blocks.append(flat)
    if not blocks:
        raise ValueError("the encoder produces no columns: nothing to preprocess")
    nodes.append(helper.make_node("Concat", blocks, ["pre_encoded"], axis=1))
    if encoder.scales_in_model:
        offsets, factors = encoder.scaling_vectors()
        nodes.append(
            helper.make_node(
                "Scaler",
                ["pre_encoded"],
                [output],
                domain=ML_DOMAIN,
                offset=offsets.astype(np.float32).tolist(),
                scale=(1.0 / factors).astype(np.float32).tolist(),
            )
        )
    else:
        nodes.append(helper.make_node("Identity", ["pre_encoded"], [output]))
    width = len(encoder.output_names)
    graph = helper.make_graph(
        nodes,
        "preprocessing",
        inputs,
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, [None, width])],
    )
    imports = {"": DEFAULT_OPSET, ML_DOMAIN: ML_OPSET, **(opsets or {})}
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid(domain, version) for domain, version in imports.items()]
    )
    if ir_version is not None:
        model.ir_version = ir_version
    onnx.checker.check_model(model)
    return model


def _input(name: str, element_type: int) -> onnx.ValueInfoProto:
    from onnx import helper

    return helper.make_tensor_value_info(name, element_type, [None, 1])


def with_preprocessing(
    estimator: onnx.ModelProto, encoder: FeatureEncoder, matrix_input: str
) -> onnx.ModelProto:
    """`estimator` (which takes the encoded matrix as `matrix_input`) behind the version's preprocessing:
    the returned model takes the raw features and keeps the estimator's outputs."""
    import onnx
    from onnx import compose

    opsets = {entry.domain or "": entry.version for entry in estimator.opset_import}
    opsets.setdefault(ML_DOMAIN, ML_OPSET)
    front = preprocessing_model(encoder, PREPROCESSED, opsets, estimator.ir_version)
    merged = compose.merge_models(front, estimator, io_map=[(PREPROCESSED, matrix_input)])
    onnx.checker.check_model(merged)
    return merged
