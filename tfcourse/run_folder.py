"""The output folder of a training run: its files, and how its checkpoint says what it trained.

:mod:`tfcourse.runs` writes the folder, :mod:`tfcourse.inference` reads it::

    checkpoint.pt   weights, optimiser and RNG states (see ``training.save_checkpoint``) and
                    metadata: the run's settings ("config"), the model ("model", a model spec)
                    and how prompts become ids ("codec", see :mod:`tfcourse.codec`)
    summary.json    settings, parameter count, throughput, final metrics, whether the target was met
    loss.png        training loss and the task's metric against the step

A model spec is ``{"kind": "transformer" | "gpt", **constructor arguments}``: plain values, so
that a checkpoint loads with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from tfcourse.codec import Codec, codec_from_spec
from tfcourse.model import GPT, GPTConfig, Transformer

CHECKPOINT, SUMMARY, LOSS_PLOT = "checkpoint.pt", "summary.json", "loss.png"


def transformer_spec(arguments: dict) -> dict:
    """The spec of ``Transformer(**arguments)``."""
    return {"kind": "transformer", **arguments}


def gpt_spec(config: GPTConfig) -> dict:
    """The spec of ``GPT(config)``."""
    return {"kind": "gpt", **asdict(config)}


def model_from_spec(spec: dict) -> nn.Module:
    """A fresh (untrained) ``Transformer`` or ``GPT`` from its spec."""
    arguments = {key: value for key, value in spec.items() if key != "kind"}
    if spec["kind"] == "gpt":
        return GPT(GPTConfig(**arguments))
    if spec["kind"] == "transformer":
        return Transformer(**arguments)
    raise ValueError(f"unknown model kind {spec['kind']!r}; expected 'gpt' or 'transformer'")


def run_metadata(config: dict, model_spec: dict, codec: Codec) -> dict:
    """What a run's checkpoint stores beside the weights, as plain values."""
    return {"config": config, "model": model_spec, "codec": codec.spec()}


@dataclass
class SavedRun:
    """A run read back: its model with the trained weights (on the CPU), its codec and its settings."""

    model: nn.Module
    codec: Codec
    config: dict


def load_run(path: str | os.PathLike) -> SavedRun:
    """Read the checkpoint file ``path``, or the checkpoint in the run folder ``path``."""
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}; train one with `tfcourse train TASK --out DIR`")
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    metadata = checkpoint.get("metadata") or {}
    if "model" not in metadata:
        raise ValueError(f"{path} does not say how to rebuild its model; was it written by `tfcourse train`?")
    model = model_from_spec(metadata["model"])
    model.load_state_dict(checkpoint["model"])
    return SavedRun(model, codec_from_spec(metadata["codec"]), metadata["config"])
