"""CartographyTrainer under real multi-process training: torchrun, 2 CPU processes, gloo.

``tests/scripts/hf_ddp_train.py`` trains a tiny BERT with the ``transformers.Trainer`` on 2
processes (127.0.0.1), and each process writes its record. The comparisons:

- with learning rate 0 and no dropout a sample's logits depend on the sample alone, so the
  2-process record must equal a single-process run's (same script, one process) and the
  directly computed logits, sample by sample and epoch by epoch;
- the samplers pad 37 samples to an even split: the padding is counted as duplicates, once per
  repeated row, and nothing is missing;
- a 2-process run killed after a mid-epoch checkpoint and resumed equals the uninterrupted one.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("transformers")
pytest.importorskip("datasets")

from cartokit import TrainingDynamics  # noqa: E402

SCRIPTS = Path(__file__).resolve().parent / "scripts"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"_cartokit_{name}", SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


script = _load("hf_ddp_train")
run_two_processes = _load("torchrun").run_two_processes
N, EPOCHS = script.N, script.EPOCHS


@pytest.fixture(scope="module")
def ranks(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("ddp")
    run_two_processes(SCRIPTS / "hf_ddp_train.py", out, timeout_s=240)
    result: dict = {}
    for name in ("frozen", "eval_pass", "learning", "resumed"):
        result[name] = [dict(np.load(out / f"{name}_rank{r}.npz")) for r in range(2)]
    result["checkpoint"] = sorted(p.name for p in (out / "resumed" / "checkpoint-7").iterdir())
    return result


def assert_record(got: dict, want: TrainingDynamics | dict, atol: float = 1e-6) -> None:
    if isinstance(want, TrainingDynamics):
        want = {
            "gold": want.gold_prob,
            "margin": want.margin,
            "sq": want.sq_error,
            "pred": want.pred,
        }
    assert got["gold"].shape == (EPOCHS, N)
    for key in ("gold", "margin", "sq"):
        np.testing.assert_allclose(got[key], want[key], atol=atol, err_msg=key)
    np.testing.assert_array_equal(got["pred"], want["pred"])


@pytest.fixture(scope="module")
def frozen_oracle() -> TrainingDynamics:
    logits = script.frozen_logits()
    return TrainingDynamics.from_logits(np.stack([logits] * EPOCHS), script.arrays()["label"])


def test_two_processes_record_what_one_process_records(ranks, frozen_oracle, tmp_path):
    single = script.run_scenario("frozen", tmp_path)
    assert single["dup"].tolist() == [0] * EPOCHS
    assert_record(single, frozen_oracle, atol=1e-5)
    for got in ranks["frozen"]:
        assert_record(got, single, atol=1e-5)
        assert_record(got, frozen_oracle, atol=1e-5)
    # Each process trained on its own share: different samples, together all of them.
    ids0, ids1 = (set(r["ids"].tolist()) for r in ranks["frozen"])
    assert ids0 != ids1 and ids0 | ids1 == set(range(N))


def test_sampler_padding_counts_as_duplicates_and_nothing_is_missing(ranks):
    for name in ("frozen", "learning"):
        rows = sum(len(r["ids"]) for r in ranks[name]) // EPOCHS  # rows both processes saw
        assert rows > N  # 37 samples cannot split evenly: the sampler padded
        for got in ranks[name]:
            assert got["dup"].tolist() == [rows - N] * EPOCHS
            assert got["missing"].tolist() == [0] * EPOCHS
            assert np.isfinite(got["gold"]).all()


def test_eval_pass_under_two_processes(ranks, frozen_oracle):
    for got in ranks["eval_pass"]:
        assert_record(got, frozen_oracle, atol=1e-5)
        assert got["missing"].tolist() == [0] * EPOCHS


def test_both_processes_hold_the_same_record(ranks):
    for name in ("frozen", "eval_pass", "learning", "resumed"):
        first, second = ranks[name]
        assert_record(first, second, atol=0)
    # The learning run did learn: epochs differ.
    gold = ranks["learning"][0]["gold"]
    assert not np.allclose(gold[0], gold[-1])


def test_resumed_two_process_run_equals_the_uninterrupted_one(ranks):
    # Each process saved its own unfinished epoch next to its RNG state.
    assert {"cartokit_recorder_0.pt", "cartokit_recorder_1.pt", "dynamics.npz"} <= set(
        ranks["checkpoint"]
    )
    for got, want in zip(ranks["resumed"], ranks["learning"]):
        assert_record(got, want, atol=1e-6)
        assert got["dup"].tolist() == want["dup"].tolist()
        assert got["missing"].tolist() == [0] * EPOCHS
