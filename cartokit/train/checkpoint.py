"""Saving and loading the state of :func:`~cartokit.train.fit`'s loop, to resume a killed run.

A checkpoint holds the model, the optimizer, torch's RNG, the recorder, the position in the
loop (epoch, step) and the history so far, written atomically: a kill while saving keeps the
previous file. Loading is ``weights_only``: a file holding anything but tensors, numbers,
strings and containers is refused, never retried in a way that could run code from it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from cartokit._files import atomic_write

__all__ = ["CHECKPOINT_VERSION", "checkpoint_path", "load_checkpoint", "save_checkpoint"]

#: The layout of the saved state; a newer file is refused with a request to upgrade.
CHECKPOINT_VERSION = 1

# Every entry and its type: a file missing one, or holding another type, is not ours.
_ENTRIES = {
    "version": int,
    "config": dict,
    "epoch": int,
    "step": int,
    "global_step": int,
    "model": dict,
    "optimizer": dict,
    "rng": torch.Tensor,
    "cuda_rng": list,
    "running": torch.Tensor,
    "history": list,
}


def checkpoint_path(directory: Path, rank: int, world: int) -> Path:
    """``directory/checkpoint.pt``; under DDP ``checkpoint-rank<r>.pt``, since a mid-epoch
    recorder state is per rank."""
    return directory / ("checkpoint.pt" if world == 1 else f"checkpoint-rank{rank}.pt")


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``path`` atomically (a kill while saving leaves the previous file)."""
    with atomic_write(path) as fh:
        torch.save(state, fh)


def load_checkpoint(path: Path, config: dict[str, Any], *, caller: str) -> dict[str, Any]:
    """The state saved by :func:`save_checkpoint`, or one line saying why ``path`` is not one.

    ``config`` holds the settings of the resuming call; each must equal the saved one.
    """
    not_ours = f"{caller}(resume=True): {path} is not a cartokit checkpoint"
    fix = "Delete it, or give another checkpoint_dir, to start afresh."
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a damaged file fails in any of a dozen ways, none worth a traceback
        # torch's own message suggests weights_only=False, which would run code from the file:
        # never pass that on.
        if "Weights only load failed" in str(err):
            raise ValueError(
                f"{not_ours}: it holds Python objects that fit never saves, and loading them "
                f"could run code; it was not loaded. {fix}"
            ) from None
        reason = str(err).strip().split("\n")[0].split(". ")[0][:100]
        raise ValueError(
            f"{not_ours}: it is truncated or corrupt ({type(err).__name__}"
            f"{': ' + reason if reason else ''}). {fix}"
        ) from None
    if not isinstance(state, dict):
        raise ValueError(f"{not_ours}: it holds a {type(state).__name__}, not a dict. {fix}")
    # The version first: a newer cartokit may save other entries.
    version = state.get("version")
    if isinstance(version, int) and version > CHECKPOINT_VERSION:
        raise ValueError(
            f"{caller}: the checkpoint {path} has version {version}, newer than this "
            "cartokit understands; upgrade cartokit."
        )
    wrong = [k for k, kind in _ENTRIES.items() if not isinstance(state.get(k), kind)]
    if "recorder" not in state or not isinstance(state["recorder"], (dict, type(None))):
        wrong.append("recorder")
    if wrong:
        raise ValueError(f"{not_ours}: its entries {wrong} are missing or of the wrong type. {fix}")
    for key, value in config.items():
        if state["config"].get(key) != value:
            raise ValueError(
                f"{caller}(resume=True): the checkpoint {path} was written with {key}="
                f"{state['config'].get(key)!r}, this call has {key}={value!r}. Resume with the "
                "settings of the interrupted run, or give another checkpoint_dir."
            )
    return state
