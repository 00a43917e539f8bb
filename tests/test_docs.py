"""The figures in docs/MODEL.md are the code's."""

from pathlib import Path

import pytest

from renderflow.core.configs import CPU_DEFAULT_TRANSFORMER, PRODUCTION_TRANSFORMER, parameter_counts

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
