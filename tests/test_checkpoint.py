"""Checkpoint folders: save -> load -> identical outputs; clear errors for broken folders."""

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import make_envmap, make_gbuffers, randomise

from renderflow.core.model.pipeline import RenderFlowPipeline


@pytest.fixture
def trained_pipeline(tiny_pipeline):
    # Random values everywhere (zero-init parts and LoRA too), so that a lost tensor shows.
    for module in (tiny_pipeline.transformer, tiny_pipeline.keyframe_adapter, tiny_pipeline.inverse_adapter):
        randomise(module)
    return tiny_pipeline


def test_save_then_load_gives_identical_renders_and_decompositions(trained_pipeline, tmp_path):
    gbuffers, env = make_gbuffers(frames=4), make_envmap()
    keyframes = {2: np.full((32, 32, 3), 0.3, np.float32)}
    image = np.random.default_rng(3).random((2, 32, 32, 3), dtype=np.float32)
    trained_pipeline.save_pretrained(tmp_path / "ckpt")
    loaded = RenderFlowPipeline.from_pretrained(tmp_path / "ckpt")
    np.testing.assert_array_equal(loaded.render(gbuffers, env), trained_pipeline.render(gbuffers, env))
    np.testing.assert_array_equal(
        loaded.render(gbuffers, env, keyframes), trained_pipeline.render(gbuffers, env, keyframes)
    )
    for name, buffer in trained_pipeline.decompose(image).items():
        np.testing.assert_array_equal(loaded.decompose(image)[name], buffer)


def test_checkpoint_folder_holds_config_and_safetensors_only(trained_pipeline, tmp_path):
    trained_pipeline.save_pretrained(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "autoencoder.safetensors",
        "config.json",
        "inverse_adapter.safetensors",
        "keyframe_adapter.safetensors",
        "transformer.safetensors",
    ]
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["bridge"] == {"sigma": 0.005, "train_times": [0.0, 0.25, 0.5, 0.75], "source": "albedo"}
    assert config["lighting"] == {"normalise": False, "env_brackets": [0.0]}
    assert config["autoencoder"]["kind"] == "tiny"


def test_missing_config_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"config.json is missing"):
        RenderFlowPipeline.from_pretrained(tmp_path)


def test_truncated_weights_are_a_clear_error(trained_pipeline, tmp_path):
    trained_pipeline.save_pretrained(tmp_path)
    weights = tmp_path / "transformer.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(ValueError, match=r"transformer.safetensors: not a readable safetensors file"):
        RenderFlowPipeline.from_pretrained(tmp_path)


def test_a_pipeline_setting_out_of_range_names_the_file_and_the_setting(trained_pipeline, tmp_path):
    trained_pipeline.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["pipeline"]["change_weight"] = 1.5
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(
        ValueError, match=r"config.json: pipeline.change_weight: expected a share in \[0, 1\]"
    ):
        RenderFlowPipeline.from_pretrained(tmp_path)


def test_weights_of_another_shape_are_a_clear_error(trained_pipeline, tmp_path):
    trained_pipeline.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["transformer"]["num_layers"] = 3
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"weights do not fit RenderFlowTransformer"):
        RenderFlowPipeline.from_pretrained(tmp_path)


def test_renders_are_bit_identical_twice_in_one_process(trained_pipeline):
    gbuffers, env = make_gbuffers(frames=4), make_envmap()
    np.testing.assert_array_equal(
        trained_pipeline.render(gbuffers, env), trained_pipeline.render(gbuffers, env)
    )


RENDER_IN_SUBPROCESS = """
import sys, numpy as np
sys.path.insert(0, sys.argv[2])
from conftest import make_envmap, make_gbuffers
from renderflow.core.model.pipeline import RenderFlowPipeline
pipeline = RenderFlowPipeline.from_pretrained(sys.argv[1])
np.save(sys.argv[3], pipeline.render(make_gbuffers(frames=4), make_envmap()))
"""


def test_renders_are_bit_identical_across_processes(trained_pipeline, tmp_path):
    trained_pipeline.save_pretrained(tmp_path / "ckpt")
    tests_dir = str(__import__("pathlib").Path(__file__).parent)
    outputs = []
    for run in range(2):
        out = tmp_path / f"run{run}.npy"
        subprocess.run(
            [sys.executable, "-c", RENDER_IN_SUBPROCESS, str(tmp_path / "ckpt"), tests_dir, str(out)],
            check=True,
        )
        outputs.append(np.load(out))
    np.testing.assert_array_equal(outputs[0], outputs[1])
    loaded = RenderFlowPipeline.from_pretrained(tmp_path / "ckpt")
    np.testing.assert_array_equal(outputs[0], loaded.render(make_gbuffers(frames=4), make_envmap()))
