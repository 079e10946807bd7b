"""cartokit.compression: pruning (global magnitude, structured), int8 quantization (dynamic with
torchao, static with the eager API), model sizes, fine-tuning with the zeros held, the
``compress=`` option of distill_on_subsets, its table and figure, and bench/compression.py."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from cartokit.compression import (
    METHODS,
    PRUNING,
    StaticQuantized,
    compress,
    compressions,
    keep_sparsity,
    model_size,
)
from cartokit.data import from_arrays, load_dataset
from cartokit.distillation import compression_table, distill_on_subsets
from cartokit.models import CNN, MLP, model_factory
from cartokit.plot.compression import plot_accuracy_by_size
from cartokit.train import evaluate, fit

ROOT = Path(__file__).resolve().parents[1]
TORCHAO = 'int8 dynamic quantization needs torchao: pip install "cartokit[compress]"'


@pytest.fixture
def torchao():
    return pytest.importorskip("torchao", reason=TORCHAO)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def trained_mlp(digits):
    """The digits MLP (128 hidden), trained: what the issue's size target is about."""
    return fit(MLP.from_split(digits.train, seed=0), digits.train, epochs=5, lr=0.003,
               record=False, progress=False).model  # fmt: skip


def weights(model: nn.Module) -> list[torch.Tensor]:
    return [m.weight.detach() for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]


# ------------------------------------------------------------------------------ pruning


def test_prune_zeroes_the_smallest_weights_across_all_layers_and_leaves_the_model_given():
    """Oracle: the global threshold, from every Linear weight at once; biases are kept."""
    model = MLP(6, 3, hidden=(5, 4), seed=0)
    before = [w.clone() for w in weights(model)]
    pruned, size = compress(model, method="prune", amount=0.4)
    everything = torch.cat([w.flatten().abs() for w in before])
    k = round(0.4 * everything.numel())
    smallest = set(torch.argsort(everything)[:k].tolist())
    after = torch.cat([w.flatten() for w in weights(pruned)])
    assert {i for i, v in enumerate(after.tolist()) if v == 0} == smallest
    kept = [i for i in range(len(after)) if i not in smallest]
    assert torch.equal(after[kept], torch.cat([w.flatten() for w in before])[kept])
    for layer, original in zip(
        (m for m in pruned.modules() if isinstance(m, nn.Linear)),
        (m for m in model.modules() if isinstance(m, nn.Linear)),
    ):
        assert torch.equal(layer.bias, original.bias)
    assert all(torch.equal(a, b) for a, b in zip(weights(model), before))  # a copy was pruned
    assert size.nonzero_params == size.parameters - k
    # permanent: plain parameters, no mask left in the state dict
    assert not any("orig" in key or "mask" in key for key in pruned.state_dict())


def test_prune_structured_removes_whole_neurons_with_their_bias_but_not_the_output_layer():
    model = MLP(8, 3, hidden=(10,), seed=1)
    first, last = model.net[0], model.net[-1]
    norms = first.weight.detach().norm(dim=1)
    pruned, _ = compress(model, method="prune_structured", amount=0.3)
    hidden, out = pruned.net[0], pruned.net[-1]
    dead = (hidden.weight == 0).all(dim=1)
    assert set(torch.nonzero(dead).flatten().tolist()) == set(torch.argsort(norms)[:3].tolist())
    assert (hidden.bias[dead] == 0).all() and (hidden.bias[~dead] == first.bias[~dead]).all()
    assert torch.equal(out.weight, last.weight) and torch.equal(out.bias, last.bias)
    # a removed neuron outputs nothing, whatever the input
    activations = pruned.net[:2](torch.randn(16, 8))
    assert (activations[:, dead] == 0).all()


def test_prune_structured_removes_channels_of_a_cnn():
    model = CNN(4, image_shape=(8, 8), seed=0)
    pruned, size = compress(model, method="prune_structured", amount=0.5)
    convs = [m for m in pruned.modules() if isinstance(m, nn.Conv2d)]
    assert [int((c.weight.flatten(1) == 0).all(dim=1).sum()) for c in convs] == [8, 16]
    assert torch.equal(pruned.head[-1].weight, model.head[-1].weight)
    assert size.nonzero_params < size.parameters


# ------------------------------------------------------------------------------ quantization


def test_quantize_dynamic_is_torchao_int8_at_most_0_4_of_the_bytes_and_as_accurate(
    digits, trained_mlp, torchao
):
    """The issue's target on the digits MLP: saved size <= 0.4x float32, accuracy kept."""
    from torchao.quantization import Int8Tensor

    quantized, size = compress(trained_mlp, method="quantize_dynamic")
    assert all(isinstance(m.weight, Int8Tensor) for m in quantized.modules()
               if isinstance(m, nn.Linear))  # fmt: skip
    dense = model_size(trained_mlp)
    assert size.parameters == dense.parameters
    assert size.size_bytes <= 0.4 * dense.size_bytes
    drop = evaluate(trained_mlp, digits.test).accuracy - evaluate(quantized, digits.test).accuracy
    assert abs(drop) <= 0.02
    assert next(trained_mlp.parameters()).dtype == torch.float32  # the model given is float


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_quantize_static_calibrates_int8_conv_and_linear_layers(digits, kind):
    model = fit(model_factory(kind, seed=0)(digits.train), digits.train, epochs=3, lr=0.003,
                record=False, progress=False).model  # fmt: skip
    calibration = digits.train.subset(np.arange(256))
    quantized, size = compress(model, method="quantize_static", calibration=calibration)
    assert isinstance(quantized, StaticQuantized)
    int8 = [t for t in quantized.state_dict().values()
            if isinstance(t, torch.Tensor) and t.dtype == torch.qint8]  # fmt: skip
    int8 += [t for v in quantized.state_dict().values() if isinstance(v, tuple)
             for t in v if t.dtype == torch.qint8]  # fmt: skip
    assert len(int8) == len(weights(model))  # every Linear and Conv weight is int8
    assert size.size_bytes < 0.6 * model_size(model).size_bytes
    logits = quantized(torch.as_tensor(digits.test.inputs))
    assert logits.dtype == torch.float32 and logits.shape == (len(digits.test), 10)
    agree = (logits.argmax(1) == model(torch.as_tensor(digits.test.inputs)).argmax(1)).float()
    assert agree.mean() > 0.95
    drop = evaluate(model, digits.test).accuracy - evaluate(quantized, digits.test).accuracy
    assert abs(drop) <= 0.03


def test_quantize_static_takes_an_array_and_warns_nothing(digits, recwarn):
    model = MLP(64, 10, seed=0)
    compress(model, method="quantize_static", calibration=digits.train.inputs[:100])
    assert [str(w.message) for w in recwarn] == []  # torch.ao's deprecation notes are silenced


def test_model_size_counts_quantized_and_zero_weights(torchao):
    layer = nn.Linear(4, 2)
    with torch.no_grad():
        layer.weight[0] = 0.0
    size = model_size(layer)
    assert (size.parameters, size.nonzero_params) == (10, 6)
    assert size.zipped_bytes < size.size_bytes and size.sparsity == pytest.approx(0.4)
    quantized, qsize = compress(nn.Sequential(layer), method="quantize_dynamic")
    assert (qsize.parameters, qsize.nonzero_params) == (10, 6)  # zeros quantize to zero


def test_quantize_dynamic_without_torchao_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchao", None)
    monkeypatch.setitem(sys.modules, "torchao.quantization", None)
    with pytest.raises(ImportError, match=r"needs torchao\. Install it with `pip install 'cartokit\[compress\]'`"):  # fmt: skip # noqa: E501
        compress(MLP(4, 2, seed=0), method="quantize_dynamic")


# ------------------------------------------------------------------------------ fine-tuning


def test_keep_sparsity_holds_the_zeros_while_fit_trains_and_without_it_they_regrow(digits):
    pruned, size = compress(MLP.from_split(digits.train, seed=0), method="prune", amount=0.7)
    before = [w.clone() for w in weights(pruned)]
    with keep_sparsity(pruned):
        fit(pruned, digits.train, epochs=1, record=False, progress=False)
    after = weights(pruned)
    assert model_size(pruned).nonzero_params == size.nonzero_params
    assert all(torch.equal(a == 0, b == 0) for a, b in zip(after, before))
    assert not all(torch.equal(a, b) for a, b in zip(after, before))  # it did train
    assert not any("mask" in key for key in pruned.state_dict())  # plain weights again
    fit(pruned, digits.train, epochs=1, record=False, progress=False)  # outside the block
    assert model_size(pruned).nonzero_params > size.nonzero_params


def test_a_pruned_student_records_its_own_map_to_compare_with_its_teachers(digits):
    """The issue's recording bullet: a compressed student's dynamics, recorded as any model's,
    give a map that map_agreement compares with the teacher's, sample by sample."""
    from cartokit import compute_metrics
    from cartokit.distillation import distill
    from cartokit.train import predict_logits
    from cartokit.transfer import map_agreement

    train = digits.train.subset(np.arange(400), name="digits/train[400]")
    teacher = fit(MLP.from_split(train, seed=1), train, epochs=4, lr=0.01, progress=False)
    student = fit(MLP.from_split(train, seed=0), train, epochs=3, lr=0.01, record=False,
                  progress=False).model  # fmt: skip
    pruned, size = compress(student, method="prune", amount=0.6)
    with keep_sparsity(pruned):
        tuned = distill(None, pruned, train, teacher_logits=predict_logits(teacher.model, train),
                        epochs=3, lr=0.01, seed=0)  # fmt: skip
    assert model_size(tuned.model).nonzero_params == size.nonzero_params
    assert tuned.dynamics.num_samples == len(train) and tuned.dynamics.num_epochs == 3
    pruned_map = compute_metrics(tuned.dynamics)
    agreement = map_agreement(compute_metrics(teacher.dynamics), pruned_map)
    assert agreement.spearman["confidence"] > 0.3  # it learned the teacher's easy and hard
    assert 0 < agreement.region_agreement <= 1


def test_keep_sparsity_holds_a_removed_neurons_bias_but_not_a_constant_neurons():
    model = MLP(4, 2, hidden=(6,), seed=0)
    pruned, _ = compress(model, method="prune_structured", amount=0.5)
    hidden = pruned.net[0]
    with torch.no_grad():
        live = torch.nonzero((hidden.weight != 0).any(dim=1)).flatten()
        hidden.weight[live[0]] = 0.0  # a neuron with no weights but a bias: a constant
        hidden.bias[live[0]] = 0.5  # > 0: it passes the ReLU, so it gets a gradient
    constant, dead = int(live[0]), torch.nonzero(hidden.bias == 0).flatten()
    with keep_sparsity(pruned):
        optimizer = torch.optim.SGD(pruned.parameters(), lr=1.0)
        pruned(torch.randn(32, 4)).pow(2).sum().backward()
        optimizer.step()
    assert (pruned.net[0].bias[dead] == 0).all()
    assert pruned.net[0].bias[constant] != 0.5  # it trained


# ------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"method": "prun", "amount": 0.5}, ValueError,
         r"^The 'method' parameter of compress must be one of \['prune', .*mean 'prune'\?$"),
        ({"method": "prune", "amount": 1.5}, ValueError,
         r"^The 'amount' parameter of compress must be a float in the range \(0, 1\)\. Got 1\.5"),
        ({"method": "prune", "amount": 0}, ValueError, r"range \(0, 1\)\. Got 0 instead\.$"),
        ({"method": "prune_structured", "amount": 1.0}, ValueError, r"Got 1\.0 instead\.$"),
        ({"method": "prune"}, ValueError,
         r"^The 'amount' parameter of compress must be a float .* for method='prune'"),
        ({"method": "quantize_dynamic", "amount": 0.5}, ValueError,
         r"^compress: amount is the share to prune, and method='quantize_dynamic' prunes nothing"),
        ({"method": "quantize_static"}, ValueError,
         r"^compress: method='quantize_static' needs calibration data"),
        ({"method": "quantize_static", "calibration": [[0.0] * 4]}, TypeError,
         r"^The 'calibration' parameter of compress must be a Split or an array of inputs"),
        ({"method": "quantize_static", "calibration": np.zeros((3, 5), np.float32)}, ValueError,
         r"^compress: the MLP could not run on the calibration inputs of shape \(3, 5\)"),
        ({"method": "prune", "amount": 0.5, "calibration": np.zeros((3, 4))}, ValueError,
         r"^compress: calibration data is for method='quantize_static'"),
    ],
)  # fmt: skip
def test_bad_options_are_one_line(options, error, message):
    with pytest.raises(error, match=message) as caught:
        compress(MLP(4, 2, seed=0), **options)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("model", "options", "error", "message"),
    [
        (nn.Sequential(nn.ReLU(), nn.Dropout()), {"method": "prune", "amount": 0.5}, ValueError,
         r"^compress: the Sequential has no trainable Linear or Conv layer to compress \(it "
         r"holds Dropout, ReLU\)\.$"),
        (MLP(4, 2, hidden=(), seed=0), {"method": "prune_structured", "amount": 0.5}, ValueError,
         r"leaves the output layer whole, and the MLP has no other .* Use method='prune'"),
        (nn.Sequential(nn.Conv2d(1, 2, 3)), {"method": "quantize_dynamic"}, ValueError,
         r"quantizes Linear layers, and the Sequential has none that train\. For Conv layers "
         r"use method='quantize_static'"),
        (nn.Sequential(nn.Linear(4, 2)), {"method": "quantize_static", "calibration":
         np.zeros((2, 4))}, TypeError,
         r"^compress: method='quantize_static' supports cartokit's MLP and CNN.* Got a "
         r"Sequential; use method='quantize_dynamic'"),
        (MLP(4, 2, seed=0).to("meta"), {"method": "quantize_dynamic"}, ValueError,
         r"^compress: int8 quantized models run on the CPU, and the model is on meta\. Move it "
         r"first: compress\(model\.cpu\(\), method='quantize_dynamic'\)\.$"),
        ("MLP", {"method": "prune", "amount": 0.5}, TypeError,
         r"^The 'model' parameter of compress must be a torch\.nn\.Module\. Got 'MLP'"),
    ],
)  # fmt: skip
def test_models_it_cannot_compress_are_one_line(model, options, error, message):
    with pytest.raises(error, match=message) as caught:
        compress(model, **options)
    assert "\n" not in str(caught.value)


def test_a_frozen_layer_is_left_alone():
    model = MLP(4, 2, hidden=(8,), seed=0)
    model.net[0].requires_grad_(False)  # as a frozen encoder's layers
    pruned, _ = compress(model, method="prune", amount=0.5)
    assert torch.equal(pruned.net[0].weight, model.net[0].weight)
    assert (pruned.net[-1].weight == 0).float().mean() == 0.5


def test_compressions_reads_names_and_pairs_and_refuses_the_rest():
    plans = compressions([("prune", 0.5), ("prune_structured", 0.25), "quantize_static"])
    assert [(p.label, p.method, p.amount) for p in plans] == [
        ("prune 50%", "prune", 0.5),
        ("prune_structured 25%", "prune_structured", 0.25),
        ("quantize_static", "quantize_static", None),
    ]
    assert set(PRUNING) < set(METHODS)
    with pytest.raises(TypeError, match=r"must be a method name, a \(method, amount\) pair"):
        compressions([0.5])
    with pytest.raises(ValueError, match=r"some twice; give each once"):
        compressions(["quantize_dynamic", "quantize_dynamic"])
    with pytest.raises(ValueError, match=r"'amount' parameter of compressions .* method='prune'"):
        compressions("prune")


# ------------------------------------------------------------------------------ distill_on_subsets


@pytest.fixture(scope="module")
def compressed_runs(digits):
    pytest.importorskip("torchao", reason=TORCHAO)
    train = digits.train.subset(np.arange(300), name="digits/train[300]")
    teacher = fit(MLP.from_split(train, seed=0), train, epochs=3, lr=0.01, record=False,
                  progress=False).model  # fmt: skip
    subsets = {"full": None, "half": train.ids[:150]}
    options = {"epochs": 4, "lr": 0.01, "eval_data": {"test": digits.test}}
    plans = [("prune", 0.5), ("prune_structured", 0.5), "quantize_dynamic", "quantize_static"]
    results = distill_on_subsets(
        teacher, model_factory("mlp", seed=0), train, subsets, compress=plans, **options
    )
    untuned = distill_on_subsets(
        teacher, model_factory("mlp", seed=0), train, subsets, compress=plans[:1],
        finetune_epochs=0, **options,
    )  # fmt: skip
    plain = distill_on_subsets(teacher, model_factory("mlp", seed=0), train, subsets, **options)
    return results, untuned, plain


def test_distill_on_subsets_compresses_each_subsets_student_and_fine_tunes_the_pruned(
    compressed_runs,
):
    results, untuned, plain = compressed_runs
    labels = ["none", "prune 50%", "prune_structured 50%", "quantize_dynamic", "quantize_static"]
    assert results.index.names == ["subset", "compression"]
    assert results.index.tolist() == [(s, c) for s in ("full", "half") for c in labels]
    for subset in ("full", "half"):
        rows = results.loc[subset]
        # the uncompressed student is the one distill_on_subsets trains without compress
        assert rows.loc["none", "test_accuracy"] == plain.loc[subset, "test_accuracy"]
        assert rows.loc["none", "steps"] == plain.loc[subset, "steps"]
        epochs = plain.loc[subset, "epochs"]
        # pruned students were fine-tuned: half the epochs at least 2, at the subset's budget
        assert rows.loc["prune 50%", "finetune_epochs"] == epochs // 2
        assert rows.loc["prune 50%", "steps"] > rows.loc["none", "steps"]
        assert rows.loc["prune 50%", "nonzero_params"] < 0.52 * rows.loc["none", "parameters"]
        assert rows.loc["quantize_dynamic", "finetune_epochs"] == 0
        assert rows.loc["quantize_dynamic", "size_bytes"] <= 0.4 * rows.loc["none", "size_bytes"]
        assert (rows["test_accuracy"] > 0.5).all()
    assert results.loc[("half", "none"), "epochs"] == 2 * results.loc[("full", "none"), "epochs"]
    # finetune_epochs=0: the pruned student is evaluated as pruned, with no more steps
    pruned = untuned.loc[("full", "prune 50%")]
    assert (
        pruned["finetune_epochs"] == 0 and pruned["steps"] == untuned.loc[("full", "none"), "steps"]
    )
    assert pruned["test_accuracy"] != results.loc[("full", "prune 50%"), "test_accuracy"]


def test_distill_on_subsets_checks_compress_before_training(digits):
    options = {"teacher_logits": np.zeros((len(digits.train), 10)), "compress": "prun"}
    with pytest.raises(ValueError, match=r"'method' parameter of distill_on_subsets must be"):
        distill_on_subsets(None, model_factory("mlp"), digits.train, {"full": None}, **options)
    options.update(compress="quantize_dynamic", finetune_epochs=-1)
    with pytest.raises(ValueError, match=r"'finetune_epochs' parameter of distill_on_subsets"):
        distill_on_subsets(None, model_factory("mlp"), digits.train, {"full": None}, **options)


def test_compression_table_puts_accuracy_beside_size(compressed_runs):
    results, _, plain = compressed_runs
    table = compression_table(results)
    assert table.index.tolist() == list(dict.fromkeys(results.index.get_level_values(1)))
    assert list(dict.fromkeys(table.columns.get_level_values(0))) == ["size", "test accuracy"]
    assert list(table["test accuracy"].columns) == ["full", "half"]
    assert (
        table[("test accuracy", "half")]["prune 50%"]
        == results.loc[("half", "prune 50%"), "test_accuracy"]
    )
    assert table[("size", "size_bytes")]["none"] == results.loc[("full", "none"), "size_bytes"]
    with pytest.raises(ValueError, match=r"^compression_table: results must be the output of "
                       r"distill_on_subsets\(\.\.\., compress=\.\.\.\)"):  # fmt: skip
        compression_table(plain)


def test_plot_accuracy_by_size_draws_a_line_per_subset_per_panel(compressed_runs, tmp_path):
    results, _, _ = compressed_runs
    fig = plot_accuracy_by_size(results, path=tmp_path / "size.png")
    (ax,) = fig.axes
    assert [line.get_label() for line in ax.get_lines()] == ["full", "half"]
    # x: the compressions from the largest to the smallest deflated size
    ticks = [t.get_text().split("\n")[0] for t in ax.get_xticklabels()]
    sizes = results["zipped_bytes"].groupby(level="compression").mean()
    assert ticks == sizes.sort_values(ascending=False).index.tolist()
    assert (tmp_path / "size.png").stat().st_size > 10_000
    with pytest.raises(ValueError, match=r"'size' parameter of plot_accuracy_by_size must be"):
        plot_accuracy_by_size(results, size="bytes")
    with pytest.raises(ValueError, match=r"accuracy columns for \['test'\], not for \['ood'\]"):
        plot_accuracy_by_size(results, splits=["ood"])


def test_the_notebooks_methods_are_the_modules():
    from cartokit.study import SCHEMA, validate_params

    assert SCHEMA["methods"].item.choices == list(METHODS)
    with pytest.raises(ValueError, match=r"'sparsities' parameter of notebook 09_compression is "
                       r"empty, but the methods \['prune'\] need a share"):  # fmt: skip
        validate_params(notebook="09_compression", methods=["prune"], sparsities=[])
    with pytest.raises(ValueError, match=r"'sparsities' .* range \(0, 1\)\. Got \[0\.5, 1\.0\]"):
        validate_params(sparsities=[0.5, 1.0])


# ------------------------------------------------------------------------------ the bench


def test_bench_prints_one_json_line_per_row(torchao):
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "compression.py"), "--seeds", "0", "--epochs", "2",
         "--max-samples", "200", "--sparsities", "0.5"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [json.loads(line) for line in done.stdout.strip().splitlines()]
    keys = ["subset", "method", "amount", "size_bytes", "nonzero_params", "id_acc", "ood_acc",
            "seconds"]  # fmt: skip
    assert all(list(row)[: len(keys)] == keys for row in rows)
    subsets = ["full", "random", "easy", "ambiguous", "hard", "17% ambiguous + 10% easy"]
    methods = ["none", "prune", "prune_structured", "quantize_dynamic", "quantize_static"]
    assert [(r["subset"], r["method"]) for r in rows] == [(s, m) for s in subsets for m in methods]
    assert all(0 <= r["id_acc"] <= 1 and 0 <= r["ood_acc"] <= 1 and r["seconds"] > 0 for r in rows)
    assert "target int8 dynamic <= 0.4x bytes within 2 points" in done.stderr


def test_bench_refuses_a_sparsity_of_one():
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "compression.py"), "--sparsities", "1"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 2 and "must be in the range (0, 1). Got 1.0 instead." in done.stderr


def test_a_text_split_is_no_calibration():
    text = from_arrays(["a", "b"], [0, 1], name="toy/train")
    with pytest.raises(TypeError, match=r"calibration split 'toy/train' holds text"):
        compress(MLP(4, 2, seed=0), method="quantize_static", calibration=text)
