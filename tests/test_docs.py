"""The figures in docs/MODEL.md and docs/RESULTS.md are the code's."""

import json
from pathlib import Path

import pytest

from renderflow.core.model.configs import CPU_DEFAULT_TRANSFORMER, PRODUCTION_TRANSFORMER, parameter_counts
from renderflow.training.evaluate import results_markdown

MODEL_MD = Path(__file__).parents[1] / "docs" / "MODEL.md"


@pytest.mark.parametrize(
    ("row", "config", "rank"),
    [("production", PRODUCTION_TRANSFORMER, 64), ("cpu-default", CPU_DEFAULT_TRANSFORMER, 8)],
)
def test_parameter_table_matches_the_code(row, config, rank):
    line = next(line for line in MODEL_MD.read_text().splitlines() if line.startswith(f"| {row} "))
    documented = [int(cell.replace(",", "")) for cell in line.split("|")[2:6]]
    counts = parameter_counts(config, rank)
    assert documented == [
        counts["backbone"],
        counts["keyframe_adapter"],
        counts["inverse_adapter"],
        counts["backbone_with_keyframes"],
    ]


def test_production_model_is_the_size_of_wan_1_3b():
    counts = parameter_counts(PRODUCTION_TRANSFORMER)
    assert 1.2e9 < counts["backbone"] < 1.45e9
    assert 1.5e9 < counts["backbone_with_keyframes"] < 1.75e9


AOV_PROFILES_MD = Path(__file__).parents[1] / "docs" / "AOV_PROFILES.md"


def test_aov_profile_table_lists_every_profile_with_its_conventions():
    from renderflow.core.io.aov_profiles import PROFILES

    rows = {}
    for line in AOV_PROFILES_MD.read_text().splitlines():
        cells = [cell.strip() for cell in line.split("|")[1:-1]]
        if cells and cells[0] in PROFILES:
            rows[cells[0]] = cells
    assert set(rows) == set(PROFILES)
    for name, profile in PROFILES.items():
        assert rows[name][1] == f"{profile.normal_space}, {profile.normal_encoding}", name
        assert rows[name][2] == profile.depth_kind, name


RESULTS_MD = Path(__file__).parents[1] / "docs" / "RESULTS.md"
RESULTS_DIR = Path(__file__).parents[1] / "docs" / "results"


@pytest.mark.parametrize(
    ("name", "data", "clips"),
    [
        ("bundled_eval_ood.json", "data/ood64", 24),  # model v3 as bundled now, the headline
        ("bundled_eval_ood128.json", "data/ood128", 8),  # the same, at 128², first 8 clips
        ("v3_weight_eval_ood.json", "data/ood64", 24),  # the OOD split as first made (black spheres)
        ("v3_blend_eval_ood.json", "data/ood64", 24),  # before the change weight
        ("v3_exact_eval_ood.json", "data/ood64", 24),  # before the keyframe blend and exact background
        ("v3_eval_ood.json", "data/ood64", 24),  # v3 before the pixel filter and exact keyframes
        ("v2_eval_ood.json", "data/ood64", 24),
        ("v2_eval_test.json", "data/diverse64", 40),
    ],
)
def test_results_tables_are_the_ones_rf_eval_wrote(name, data, clips):
    """docs/RESULTS.md quotes rf-eval's own Markdown for the committed results.json, unedited: the
    bundled model's OOD split (the headline) and v2's tables before it, each whole."""
    results = json.loads((RESULTS_DIR / name).read_text())
    assert results_markdown(results) in RESULTS_MD.read_text()
    assert results["config"]["checkpoint"].endswith("renderflow-cpu")
    assert results["config"]["data"] == data and len(results["clips"]) == clips


def test_protocol_doc_lists_every_error_code_op_and_param_of_the_code():
    from renderflow.daemon import protocol as wire
    from renderflow.daemon import request_checks as checks

    text = (MODEL_MD.parent / "PROTOCOL.md").read_text()
    table = text.split("### Error codes")[1].split("\n\n")[1]
    documented = [line.split("`")[1] for line in table.splitlines() if line.startswith("| `")]
    assert documented == list(wire.ERROR_CODES)
    for op in wire.OPS:
        assert f"### `{op}`" in text
    for op in (wire.OP_RENDER, wire.OP_DECOMPOSE):
        for param in checks.PARAMS[op]:
            assert f"`{param}`" in text, param
