"""Compressed models: prune or quantize a trained model (:func:`compress`), measure its size
(:func:`model_size`), and fine-tune a pruned model without regrowing its zeros
(:func:`keep_sparsity`).

The methods (:data:`METHODS`):

* ``"prune"``: global magnitude pruning (``torch.nn.utils.prune.global_unstructured`` with the
  L1 criterion) of every trainable Linear and Conv weight: the ``amount`` share of them with the
  smallest magnitude, across layers, becomes zero. Made permanent.
* ``"prune_structured"``: L2 structured pruning (``prune.ln_structured``, ``n=2, dim=0``): in
  each layer, the ``amount`` share of output neurons (Linear) or channels (Conv) with the
  smallest L2 norm are removed, weights and bias, so they output nothing. The last layer, whose
  outputs are the classes, is left whole.
* ``"quantize_dynamic"``: int8 dynamic quantization of the Linear layers with torchao
  (``Int8DynamicActivationInt8WeightConfig``: int8 weights per output row, activations
  quantized on the fly). Needs ``pip install 'cartokit[compress]'``.
* ``"quantize_static"``: int8 static quantization of :class:`~cartokit.models.MLP` and
  :class:`~cartokit.models.CNN`, Linear and Conv layers alike, with activation ranges
  calibrated on a few batches of ``calibration`` data (PyTorch's eager
  ``torch.ao.quantization``, on the current quantized engine, x86 here; Linear/Conv + ReLU
  pairs fused first).

Why two back ends: torch 2.13 marks the eager ``torch.ao.quantization`` API as deprecated in
favour of torchao, so dynamic quantization uses torchao. torchao 0.18 has no eager static
quantization of Conv layers, and its export-based (PT2E) path (``X86InductorQuantizer``), run
here on the digits MLP, kept the float weights beside the int8 ones in the saved state dict
(53,125 bytes against 40,733 for the float MLP), so static quantization stays on the eager API,
its deprecation warnings silenced inside :func:`compress`.

Quantized models run on the CPU. Every method works on a copy: the model given is left as it
was.

Examples
--------
>>> from cartokit.models import MLP
>>> model = MLP(64, 10, seed=0)
>>> pruned, size = compress(model, method="prune", amount=0.5)
>>> size.parameters, size.nonzero_params  # 9,472 weights, half of them zero; 138 biases
(9610, 4874)
>>> model_size(model).nonzero_params  # the model given is untouched
9610
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import warnings
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn
from torch.nn.utils import prune

from cartokit._validation import InstanceOf, Interval, Options, check_param

__all__ = [
    "METHODS",
    "PRUNING",
    "Compressed",
    "Compression",
    "ModelSize",
    "StaticQuantized",
    "compress",
    "compressions",
    "keep_sparsity",
    "model_size",
    "quiet_torchao",
]

#: The methods of :func:`compress`: name -> what it does.
METHODS = MappingProxyType(
    {
        "prune": "global magnitude (L1) pruning of Linear and Conv weights",
        "prune_structured": "L2 pruning of whole neurons and channels, the output layer left whole",
        "quantize_dynamic": "int8 weights and on-the-fly int8 activations in Linear layers "
        "(torchao)",
        "quantize_static": "int8 weights and calibrated int8 activations, MLP and CNN "
        "(torch.ao eager)",
    }
)

#: The methods that prune (and take an ``amount``); the others quantize.
PRUNING = ("prune", "prune_structured")

_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)

# Calibration runs the model on this many rows at a time.
_CALIBRATION_BATCH = 256

# What the eager quantization API says on every call in torch 2.13; compress chose it knowingly
# (see the module's docstring), so the user is not told again and again.
_EAGER_WARNINGS = (
    r"torch\.ao\.quantization is deprecated",
    r"Please use quant_min and quant_max",
    r"torch\.quantize_per_tensor, torch\.quantize_per_channel",
)


@dataclass(frozen=True)
class ModelSize:
    """How large a model is, as stored.

    Attributes
    ----------
    parameters : int
        Weights and biases (of quantized layers too; scales and zero points not counted).
    nonzero_params : int
        Those that are not zero (after quantization: that do not quantize to zero).
    size_bytes : int
        Bytes of the model's state dict as ``torch.save`` writes it. Pruning leaves it as it was:
        the zeros are stored like any other value.
    zipped_bytes : int
        The same bytes deflated (zlib, level 9), as in a zip archive: where pruning's zeros pay
        off, and the one measure that shrinks with pruning and quantization alike.
    """

    parameters: int
    nonzero_params: int
    size_bytes: int
    zipped_bytes: int

    @property
    def sparsity(self) -> float:
        """Share of the parameters that are zero."""
        return 1.0 - self.nonzero_params / self.parameters if self.parameters else 0.0


class Compressed(NamedTuple):
    """What :func:`compress` returns: ``model, size = compress(...)``."""

    model: nn.Module
    size: ModelSize


class StaticQuantized(nn.Module):
    """A model whose float inputs are quantized to int8 on the way in and whose logits come back
    as floats: what ``compress(..., method="quantize_static")`` returns, ``model`` inside.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.quant = torch.ao.quantization.QuantStub()
        self.model = model
        self.dequant = torch.ao.quantization.DeQuantStub()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dequant(self.model(self.quant(x)))


# ---------------------------------------------------------------------------------------- size


def _weights_and_biases(state: dict[str, Any]) -> Iterator[torch.Tensor]:
    """The weight and bias tensors of a state dict, those of quantized layers included
    (a dynamic or static int8 Linear keeps its weight and bias as a packed pair)."""
    for key, value in state.items():
        name = key.rsplit(".", 1)[-1]
        if name == "_packed_params" and isinstance(value, tuple):
            yield from (v for v in value if isinstance(v, torch.Tensor))
        elif name in ("weight", "bias", "weight_orig", "bias_orig") and isinstance(
            value, torch.Tensor
        ):
            yield value


def model_size(model: nn.Module) -> ModelSize:
    """The parameters, non-zero parameters and saved bytes of ``model`` (see :class:`ModelSize`).

    Examples
    --------
    >>> import torch
    >>> size = model_size(torch.nn.Linear(4, 2))
    >>> size.parameters, size.nonzero_params
    (10, 10)
    """
    model = check_param("model", model, InstanceOf(nn.Module, "a torch.nn.Module"),
                        caller="model_size")  # fmt: skip
    state = model.state_dict()
    parameters = nonzero = 0
    for tensor in _weights_and_biases(state):
        parameters += tensor.numel()
        # dequantize: int8 tensors count the values that stand for zero (a float one is itself)
        nonzero += int(torch.count_nonzero(tensor.detach().dequantize()))
    buffer = io.BytesIO()
    torch.save(state, buffer)
    saved = buffer.getvalue()
    return ModelSize(parameters, nonzero, len(saved), len(zlib.compress(saved, 9)))


# ---------------------------------------------------------------------------------- compress


def _layers(model: nn.Module) -> list[nn.Module]:
    """The trainable Linear and Conv layers, in module order; a frozen encoder's are left out
    (its cached embeddings would go stale)."""
    return [m for m in model.modules() if isinstance(m, _LAYERS) and m.weight.requires_grad]


def _describe(model: nn.Module) -> str:
    kinds = sorted({type(m).__name__ for m in model.modules() if m is not model})
    return f"it holds {', '.join(kinds)}" if kinds else "it holds no layers"


def _check_cpu(model: nn.Module, method: str) -> None:
    devices = {t.device for t in (*model.parameters(), *model.buffers())}
    elsewhere = sorted(str(d) for d in devices if d.type != "cpu")
    if elsewhere:
        raise ValueError(
            f"compress: int8 quantized models run on the CPU, and the model is on {elsewhere[0]}. "
            f"Move it first: compress(model.cpu(), method={method!r})."
        )


def _calibration_batches(calibration: Any) -> list[torch.Tensor]:
    from cartokit.data import Split

    if calibration is None:
        raise ValueError(
            "compress: method='quantize_static' needs calibration data, a few batches of the "
            "inputs the model will see, to fix its activations' int8 ranges. Pass "
            "calibration=bundle.train (a Split) or an array of inputs."
        )
    if isinstance(calibration, Split):
        if calibration.kind == "text":
            raise TypeError(
                f"compress: the calibration split {calibration.name!r} holds text; static "
                "quantization takes the float inputs of an MLP or CNN."
            )
        calibration = calibration.inputs
    if not isinstance(calibration, (np.ndarray, torch.Tensor)):
        raise TypeError(
            "The 'calibration' parameter of compress must be a Split or an array of inputs "
            f"(rows first). Got {type(calibration).__name__} instead."
        )
    inputs = torch.as_tensor(np.asarray(calibration, dtype=np.float32))
    if inputs.ndim < 2 or len(inputs) == 0:
        raise ValueError(
            "compress: calibration must hold at least one row of inputs, rows first. "
            f"Got shape {tuple(inputs.shape)}."
        )
    return list(inputs.split(_CALIBRATION_BATCH))


def _prune(model: nn.Module, layers: list[nn.Module], amount: float) -> None:
    prune.global_unstructured(
        [(layer, "weight") for layer in layers], pruning_method=prune.L1Unstructured, amount=amount
    )
    for layer in layers:
        prune.remove(layer, "weight")


@torch.no_grad()
def _prune_structured(model: nn.Module, layers: list[nn.Module], amount: float) -> None:
    *hidden, _ = layers  # the last layer's outputs are the classes
    if not hidden:
        raise ValueError(
            f"compress: method='prune_structured' leaves the output layer whole, and the "
            f"{type(model).__name__} has no other Linear or Conv layer to prune. Use "
            "method='prune', or a model with hidden layers."
        )
    for layer in hidden:
        prune.ln_structured(layer, "weight", amount=amount, n=2, dim=0)
        prune.remove(layer, "weight")
        if layer.bias is not None:  # a removed neuron outputs nothing, not its bias
            dead = layer.weight.flatten(1).abs().sum(1) == 0
            layer.bias[dead] = 0.0


@contextlib.contextmanager
def quiet_torchao() -> Iterator[None]:
    """Hide what importing torchao logs on a CPU-only torch: that its CUDA kernels do not load,
    and torch's note on a registration torchao makes. Noise to a user who asked for int8 on
    the CPU; transformers imports torchao too, when it is installed, while loading a model."""
    loggers = [logging.getLogger(name) for name in ("torchao", "torch.utils._pytree")]
    levels = [log.level for log in loggers]
    for log in loggers:
        log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for log, level in zip(loggers, levels):
            log.setLevel(level)


def _import_torchao() -> Any:
    try:
        with quiet_torchao():
            import torchao.quantization as quantization
    except ImportError:
        raise ImportError(
            "compress(method='quantize_dynamic') needs torchao. Install it with "
            "`pip install 'cartokit[compress]'` (it leaves torch as it is)."
        ) from None
    return quantization


def _quantize_dynamic(model: nn.Module, layers: list[nn.Module]) -> None:
    linear = {id(layer) for layer in layers if isinstance(layer, nn.Linear)}
    if not linear:
        raise ValueError(
            f"compress: method='quantize_dynamic' quantizes Linear layers, and the "
            f"{type(model).__name__} has none that train. For Conv layers use "
            "method='quantize_static'."
        )
    quantization = _import_torchao()
    quantization.quantize_(
        model,
        quantization.Int8DynamicActivationInt8WeightConfig(),
        filter_fn=lambda module, _name: id(module) in linear,
    )


def _fusable_pairs(model: nn.Module) -> list[list[str]]:
    """Names of the (Linear or Conv2d, ReLU) pairs that follow each other in a Sequential:
    fused, their int8 output is quantized after the ReLU, over the range that is kept."""
    pairs = []
    for name, module in model.named_modules():
        if not isinstance(module, nn.Sequential):
            continue
        children = list(module.named_children())
        for (first, a), (second, b) in zip(children, children[1:]):
            if isinstance(a, (nn.Linear, nn.Conv2d)) and isinstance(b, nn.ReLU):
                pairs.append([f"{name}.{first}", f"{name}.{second}"])
    return pairs


@torch.no_grad()
def _quantize_static(model: nn.Module, calibration: Any) -> nn.Module:
    from cartokit.models import CNN, MLP

    if not isinstance(model, (MLP, CNN)):
        raise TypeError(
            "compress: method='quantize_static' supports cartokit's MLP and CNN, whose every "
            f"layer has an int8 kernel. Got a {type(model).__name__}; use "
            "method='quantize_dynamic' for its Linear layers."
        )
    batches = _calibration_batches(calibration)
    eager = torch.ao.quantization
    wrapped = StaticQuantized(model).eval()
    with warnings.catch_warnings():
        for message in _EAGER_WARNINGS:
            warnings.filterwarnings("ignore", message=message)
        pairs = _fusable_pairs(wrapped)
        if pairs:
            eager.fuse_modules(wrapped, pairs, inplace=True)
        wrapped.qconfig = eager.get_default_qconfig(torch.backends.quantized.engine)
        eager.prepare(wrapped, inplace=True)
        for batch in batches:
            try:
                wrapped(batch)
            except (RuntimeError, ValueError) as err:
                first = str(err).splitlines()[0] if str(err) else type(err).__name__
                raise ValueError(
                    f"compress: the {type(model).__name__} could not run on the calibration "
                    f"inputs of shape {tuple(batch.shape)} ({first}). Calibrate on inputs like "
                    "those it was trained on."
                ) from None
        eager.convert(wrapped, inplace=True)
    return wrapped


def _check_method(method: Any, amount: Any, *, caller: str) -> tuple[str, float | None]:
    method = check_param("method", method, Options(list(METHODS)), caller=caller)
    if method in PRUNING:
        if amount is None:
            raise ValueError(
                f"The 'amount' parameter of {caller} must be a float in the range (0, 1) for "
                f"method={method!r}: the share to remove. Got None instead."
            )
        amount = check_param("amount", amount, Interval(float, 0, 1, closed="neither"),
                             caller=caller)  # fmt: skip
    elif amount is not None:
        raise ValueError(
            f"{caller}: amount is the share to prune, and method={method!r} prunes nothing. "
            f"Got amount={amount!r}; leave it out."
        )
    return method, amount


class Compression(NamedTuple):
    """One way to compress, as :func:`compressions` reads it: ``label`` names it in tables
    (``"prune 50%"``, ``"quantize_dynamic"``)."""

    label: str
    method: str
    amount: float | None


def compressions(spec: Any, *, caller: str = "compressions") -> list[Compression]:
    """Ways to compress, checked: a method name, a ``(method, amount)`` pair, or a list of them.

    Examples
    --------
    >>> [c.label for c in compressions([("prune", 0.5), "quantize_dynamic"])]
    ['prune 50%', 'quantize_dynamic']
    """
    items = spec if isinstance(spec, list) else [spec]
    if not items:
        raise ValueError(
            f"The 'compress' parameter of {caller} must be a method name, a (method, amount) "
            "pair, or a non-empty list of them. Got [] instead."
        )
    out = []
    for item in items:
        if isinstance(item, tuple) and len(item) == 2:
            method, amount = _check_method(*item, caller=caller)
        elif isinstance(item, str):
            method, amount = _check_method(item, None, caller=caller)
        else:
            raise TypeError(
                f"The 'compress' parameter of {caller} must be a method name, a (method, amount) "
                f"pair such as ('prune', 0.5), or a list of them. Got {item!r} instead."
            )
        label = method if amount is None else f"{method} {100 * amount:g}%"
        out.append(Compression(label, method, amount))
    labels = [c.label for c in out]
    if len(set(labels)) != len(labels):
        raise ValueError(f"{caller}: compress names {labels}, some twice; give each once.")
    return out


def compress(
    model: nn.Module,
    *,
    method: str,
    amount: float | None = None,
    calibration: Any = None,
) -> Compressed:
    """A compressed copy of ``model``, and its size.

    Parameters
    ----------
    model : torch.nn.Module
        A trained model; left as it was. Its trainable Linear and Conv layers are compressed
        (a frozen encoder is not).
    method : {"prune", "prune_structured", "quantize_dynamic", "quantize_static"}
        See :data:`METHODS` and the module's docstring.
    amount : float in (0, 1)
        For the pruning methods: the share of weights (``"prune"``) or of each hidden layer's
        neurons and channels (``"prune_structured"``) to remove. The quantization methods take
        none.
    calibration : Split or array of inputs, optional
        For ``"quantize_static"``: inputs to calibrate the activations' int8 ranges on, all of
        them, 256 rows at a time; a few hundred rows of the training data are enough.

    Returns
    -------
    Compressed
        ``(model, size)``: the compressed copy, in eval mode, and its :class:`ModelSize`.
        Pruned copies stay where the model was and train like any model (inside
        :func:`keep_sparsity` their zeros stay zero); quantized copies run on the CPU and do
        not train.

    Raises
    ------
    ValueError
        An unknown method, an amount outside (0, 1) or missing for pruning (or given for
        quantization), a model with no trainable Linear or Conv layer (or, for
        ``"quantize_dynamic"``, no Linear layer), static quantization without calibration
        data, a model on another device than the CPU for quantization.
    TypeError
        ``model`` is not a torch module, or static quantization of a model other than
        :class:`~cartokit.models.MLP` and :class:`~cartokit.models.CNN`.
    ImportError
        ``"quantize_dynamic"`` without torchao.
    """
    caller = "compress"
    model = check_param("model", model, InstanceOf(nn.Module, "a torch.nn.Module"), caller=caller)
    method, amount = _check_method(method, amount, caller=caller)
    if not _layers(model):
        raise ValueError(
            f"compress: the {type(model).__name__} has no trainable Linear or Conv layer to "
            f"compress ({_describe(model)})."
        )
    if method.startswith("quantize"):
        _check_cpu(model, method)
    if method != "quantize_static" and calibration is not None:
        raise ValueError(
            f"compress: calibration data is for method='quantize_static'; method={method!r} "
            "takes none. Leave it out."
        )
    compressed = copy.deepcopy(model).eval()
    layers = _layers(compressed)
    if method == "prune":
        _prune(compressed, layers, amount)
    elif method == "prune_structured":
        _prune_structured(compressed, layers, amount)
    elif method == "quantize_dynamic":
        _quantize_dynamic(compressed, layers)
    else:
        compressed = _quantize_static(compressed, calibration)
    return Compressed(compressed, model_size(compressed))


# ------------------------------------------------------------------------------ fine-tuning


@contextlib.contextmanager
def keep_sparsity(model: nn.Module) -> Iterator[nn.Module]:
    """Inside the block, the zero weights of ``model`` stay zero while it trains.

    Each Linear and Conv weight with zeros is multiplied by a fixed mask of its non-zeros
    (``torch.nn.utils.prune.custom_from_mask``), so its zeros get no gradient; so is a zero bias
    of a neuron or channel whose weights are all zero (as ``"prune_structured"`` leaves it). At
    the end of the block the masks are made permanent and removed: the model holds plain
    weights again, as sparse as before. Use it to fine-tune or distil a pruned model, e.g. on
    a data-map subset.

    Yields
    ------
    torch.nn.Module
        ``model`` itself.

    Examples
    --------
    >>> import torch
    >>> from cartokit.models import MLP
    >>> pruned, size = compress(MLP(4, 2, seed=0), method="prune", amount=0.5)
    >>> with keep_sparsity(pruned):
    ...     loss = pruned(torch.randn(8, 4)).sum()
    ...     loss.backward()
    ...     with torch.no_grad():
    ...         for p in pruned.parameters():
    ...             p -= 0.1 * p.grad
    >>> model_size(pruned).nonzero_params == size.nonzero_params
    True
    """
    model = check_param("model", model, InstanceOf(nn.Module, "a torch.nn.Module"),
                        caller="keep_sparsity")  # fmt: skip
    held: list[tuple[nn.Module, str]] = []
    for layer in _layers(model):
        weight = layer.weight.detach()
        if not bool((weight == 0).any()):
            continue
        prune.custom_from_mask(layer, "weight", mask=weight != 0)
        held.append((layer, "weight"))
        if layer.bias is None:
            continue
        # a removed neuron: no weights and no bias (a constant neuron keeps its bias)
        alive = (weight.flatten(1).abs().sum(1) > 0) | (layer.bias.detach() != 0)
        if not bool(alive.all()):
            prune.custom_from_mask(layer, "bias", mask=alive)
            held.append((layer, "bias"))
    try:
        yield model
    finally:
        for layer, name in held:
            prune.remove(layer, name)
