"""cartokit.study.colab: the notebooks on Google Colab."""

from __future__ import annotations

import sys
import types

import cartokit
from cartokit import study


def test_colab_widget_manager_only_on_colab(monkeypatch):
    assert study.enable_colab_widgets() is False
    enabled = []
    colab = types.ModuleType("google.colab")
    colab.output = types.SimpleNamespace(enable_custom_widget_manager=lambda: enabled.append(1))
    monkeypatch.setitem(sys.modules, "google", types.ModuleType("google"))
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    assert study.enable_colab_widgets() is True and enabled == [1]


def test_badge_points_at_the_repository():
    assert study.colab_badge("02_map").endswith(f"({study.colab_url('02_map')})")
    assert f"github/{study.GITHUB_REPO}/blob/main/notebooks/02_map.ipynb" in study.colab_url(
        "02_map"
    )
    # the package at the notebooks' own version, not a source checkout
    assert study.INSTALL_SPEC == f"cartokit[hf,widgets,notebooks]=={cartokit.__version__}"
