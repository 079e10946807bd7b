"""Label noise, for checking that a data map finds what it should: one API, :func:`inject_noise`.

Two kinds of noise, both seeded:

* **symmetric**: exactly ``round(rate * N)`` samples, chosen uniformly, each get a label drawn
  uniformly from the other classes;
* **class-dependent**: a sample of class ``i`` gets label ``j`` with probability
  ``transition[i, j]``; :func:`class_dependent_transition` builds such a matrix (pair flipping).

:func:`inject_noise` takes labels (it returns the noisy labels and which flipped) or a
:class:`~cartokit.data.Split` (it returns a noisy copy whose frame keeps the truth in
``clean_label`` and ``flipped``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from cartokit._deprecation import Moved, moved
from cartokit._validation import check_int, check_labels

if TYPE_CHECKING:
    pass

__all__ = ["class_dependent_transition", "inject_noise"]


def _check_transition(transition: Any, num_classes: int | None) -> np.ndarray:
    matrix = np.asarray(transition, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(
            "The 'transition' parameter of inject_noise must be a square (C, C) matrix, row i "
            f"giving the probabilities of class i's new label. Got shape {matrix.shape} instead."
        )
    if num_classes is not None and matrix.shape[0] != num_classes:
        raise ValueError(
            f"The 'transition' parameter of inject_noise must be {num_classes}x{num_classes} "
            f"for num_classes={num_classes}. Got shape {matrix.shape} instead."
        )
    if not np.isfinite(matrix).all() or (matrix < 0).any():
        row, col = np.argwhere(~(matrix >= 0))[0]  # NaN fails >= 0 too
        raise ValueError(
            "The 'transition' parameter of inject_noise must hold probabilities >= 0. Got "
            f"{matrix[row, col]} at row {row}, column {col} instead."
        )
    sums = matrix.sum(axis=1)
    bad = np.flatnonzero(np.abs(sums - 1) > 1e-6)
    if bad.size:
        raise ValueError(
            "The rows of the 'transition' parameter of inject_noise must sum to 1. Row "
            f"{bad[0]} sums to {sums[bad[0]]:.6g}; normalise with "
            "transition / transition.sum(axis=1, keepdims=True)."
        )
    return matrix / sums[:, None]


def _inject_into_labels(
    labels: Any,
    rate: float | None = None,
    *,
    num_classes: int | None = None,
    transition: Any = None,
    seed: int | np.random.Generator = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`inject_noise` on labels (checked here): the noisy labels and which flipped."""
    if (rate is None) == (transition is None):
        raise ValueError(
            "inject_noise needs exactly one of rate= (symmetric noise) or transition= "
            "(class-dependent noise). Got " + ("both." if rate is not None else "neither.")
        )
    if transition is not None:
        matrix = _check_transition(transition, num_classes)
        num_classes = matrix.shape[0]
    labels = np.asarray(labels)
    if num_classes is None:  # non-numeric labels fail check_labels below, whatever C is
        num_classes = int(labels.max()) + 1 if labels.size and labels.dtype.kind in "iuf" else 2
    num_classes = check_int("num_classes", num_classes, caller="inject_noise", minimum=2)
    labels = check_labels(labels, num_classes, caller="inject_noise")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)

    noisy = labels.copy()
    if transition is None:
        if (
            isinstance(rate, bool)
            or not isinstance(rate, (int, float, np.number))
            or not (0 <= rate <= 1)
        ):
            raise ValueError(
                "The 'rate' parameter of inject_noise must be a float in the range [0, 1]. "
                f"Got {rate!r} instead."
            )
        chosen = rng.choice(labels.size, size=int(round(float(rate) * labels.size)), replace=False)
        # a shift in 1..C-1 lands uniformly on one of the other classes
        noisy[chosen] = (labels[chosen] + rng.integers(1, num_classes, size=chosen.size)) % (
            num_classes
        )
    else:
        for cls in range(num_classes):
            members = np.flatnonzero(labels == cls)
            if members.size:
                noisy[members] = rng.choice(num_classes, size=members.size, p=matrix[cls])
    return noisy, noisy != labels


def class_dependent_transition(num_classes: int, rate: float = 0.2, *, seed: int = 0) -> np.ndarray:
    """A class-dependent noise matrix: each class flips to one partner class at its own rate.

    The partners form one seeded cycle over the classes (pair flipping, Han et al., NeurIPS
    2018); the classes' flip rates rise evenly from ``rate / 2`` to ``3 * rate / 2`` in a seeded
    order, so they average ``rate``. With two classes, one flips at ``rate / 2`` and the other at
    ``3 * rate / 2``. Pass the result to :func:`~cartokit.inject_noise` as ``transition=``.

    Examples
    --------
    >>> class_dependent_transition(2, 0.2, seed=0).round(2).tolist()
    [[0.9, 0.1], [0.3, 0.7]]
    """
    caller = "class_dependent_transition"
    num_classes = check_int("num_classes", num_classes, caller=caller, minimum=2)
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 < rate <= 2 / 3:
        raise ValueError(
            f"The 'rate' parameter of {caller} must be a float in the range (0, 2/3], so that "
            f"the highest class rate 3 * rate / 2 stays <= 1. Got {rate!r} instead."
        )
    rng = np.random.default_rng(check_int("seed", seed, caller=caller, minimum=0))
    order = rng.permutation(num_classes)
    partner = np.empty(num_classes, dtype=np.int64)
    partner[order] = np.roll(order, -1)
    rates = np.empty(num_classes)
    rates[rng.permutation(num_classes)] = np.linspace(rate / 2, 3 * rate / 2, num_classes)
    matrix = np.diag(1.0 - rates)
    matrix[np.arange(num_classes), partner] += rates
    return matrix


def inject_noise(
    data: Any,
    rate: float | None = None,
    *,
    num_classes: int | None = None,
    transition: Any = None,
    seed: int | np.random.Generator = 0,
) -> Any:
    """Flip labels at random, seeded: symmetric noise, or class-dependent from a matrix.

    Parameters
    ----------
    data : array-like of int of shape (N,), or Split
        The labels, or a :class:`~cartokit.data.Split` whose labels to flip.
    rate : float in [0, 1], optional
        Symmetric noise: exactly ``round(rate * N)`` samples, chosen uniformly, each get a label
        drawn uniformly from the *other* ``C - 1`` classes.
    num_classes : int, optional
        ``C``. Default: the split's class count, the transition matrix's size, else
        ``max(labels) + 1``.
    transition : array-like of shape (C, C), optional
        Class-dependent noise instead of ``rate``: a sample of class ``i`` gets the new label
        ``j`` with probability ``transition[i, j]`` (rows non-negative, summing to 1; the
        diagonal is the chance to keep the label). See :func:`class_dependent_transition`.
    seed : int or numpy.random.Generator

    Returns
    -------
    (noisy, flipped) for labels
        ``noisy``: int64 array of shape (N,); ``flipped``: bool array, ``noisy != labels``.
    Split for a Split
        A copy with the noisy labels, whose frame gains ``clean_label`` (the label before noise)
        and ``flipped``, so a data map can be checked against the truth.

    Examples
    --------
    >>> noisy, flipped = inject_noise(np.arange(10) % 2, 0.3, seed=0)
    >>> int(flipped.sum())
    3
    >>> T = [[0.8, 0.2], [0.0, 1.0]]  # class 0 becomes 1 a fifth of the time; 1 never flips
    >>> noisy, flipped = inject_noise(np.zeros(1000, dtype=int), transition=T, seed=0)
    >>> bool(0.15 < flipped.mean() < 0.25)
    True
    >>> from cartokit.data import load_digits
    >>> split = inject_noise(load_digits().train, 0.1, seed=0)
    >>> int(split.frame["flipped"].sum()), int((split.labels != split.frame["clean_label"]).sum())
    (144, 144)
    """
    from cartokit.data import Split

    if not isinstance(data, Split):
        return _inject_into_labels(
            data, rate, num_classes=num_classes, transition=transition, seed=seed
        )
    labels, flipped = _inject_into_labels(
        data.labels,
        rate,
        num_classes=data.num_classes if num_classes is None else num_classes,
        transition=transition,
        seed=seed,
    )
    noisy = data.with_labels(labels)
    noisy.frame["clean_label"] = data.labels
    noisy.frame["flipped"] = flipped
    return noisy


# For one release: inject_noise takes a Split as well as labels, with the same arguments.
__getattr__ = moved(
    __name__,
    {
        "add_label_noise": Moved(
            "cartokit.noise.inject_noise", use="cartokit.inject_noise(split, ...)"
        )
    },
)
