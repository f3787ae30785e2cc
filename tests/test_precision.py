"""bf16 only where measured to pay: the speed measurement and the accuracy check both decide."""

import numpy as np
import pytest
import torch

import emzoo
from emzoo.inference import precision as inference_precision
from emzoo.train import precision as train_precision
from tests.conftest import trained_model


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EMZOO_CACHE", str(tmp_path / "cache"))


@pytest.mark.parametrize(
    "speedup, rtol, expected", [(3.0, 1.0, "bfloat16"), (1.0, 1.0, "float32"), (3.0, 0.0, "float32")]
)
def test_inference_auto_needs_speed_and_accuracy(monkeypatch, speedup, rtol, expected):
    monkeypatch.setattr(inference_precision, "cached", lambda key, measure: {"speedup": speedup})
    monkeypatch.setattr(inference_precision, "OUTPUT_RTOL", rtol)
    model = trained_model("emzoo_unet_2_44")
    predictor = emzoo.Predictor(model, precision="auto")
    assert predictor.precision == expected
    out = predictor(np.random.default_rng(0).normal(size=(64, 64)).astype(np.float32))
    ref = emzoo.predict(model, np.random.default_rng(0).normal(size=(64, 64)).astype(np.float32))
    assert np.isfinite(out).all() and (expected == "bfloat16" or np.array_equal(out, ref))


def test_speed_is_measured_once_per_machine_and_cached(tmp_path):
    calls = []
    for _ in range(2):
        result = inference_precision.cached("k", lambda: calls.append(1) or {"speedup": 1.5})
    assert calls == [1] and result["speedup"] == 1.5 and result["machine"] == inference_precision.machine_id()
    assert (tmp_path / "cache" / "precision.json").is_file()


def test_training_auto_keeps_float32_unless_bf16_pays(monkeypatch):
    model = emzoo.create_model("emzoo_unet_2_44")
    assert train_precision.choose_precision("no", model, 2, 32) == "no"
    monkeypatch.setattr(train_precision, "measure", lambda *a: {"choice": "bf16", "speedup": 2.0, "losses_agree": True})
    assert train_precision.choose_precision("auto", model, 2, 32) == "bf16"
    monkeypatch.setenv("WORLD_SIZE", "2")  # several CPU processes could measure differently
    assert train_precision.choose_precision("auto", model, 4, 32) == "no"


def test_measure_compares_real_steps():
    result = train_precision.measure(emzoo.create_model("emzoo_unet_2_44"), 2, 32, torch.device("cpu"))
    assert result["choice"] in ("bf16", "no") and result["speedup"] > 0 and result["losses_agree"] in (True, False)
