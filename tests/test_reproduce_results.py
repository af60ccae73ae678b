"""The README's result script (`examples/reproduce_results.py`): its paired
MTSA-vs-baseline summary."""

import os
import sys

import pytest

sys.path.insert(
    0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")
)

from reproduce_results import paired_comparison  # noqa: E402


def test_paired_comparison_reports_differences_seed_by_seed_with_mean_and_standard_error():
    differences, summary = paired_comparison([0.90, 0.89, 0.1 + 0.2], [0.88, 0.90, 0.3])

    assert differences == pytest.approx([0.02, -0.01, 0.0])
    # mean 0.0033; standard deviation 0.01528, over sqrt(3): 0.0088. 0.1 + 0.2 != 0.3 in
    # floats: still a tie.
    assert (
        summary
        == "+0.020, -0.010, +0.000; mean +0.0033 (standard error 0.0088, 3 seeds; ahead on 1, "
        "behind on 1)"
    )


def test_paired_comparison_of_one_seed_has_no_standard_error():
    assert (
        paired_comparison([0.9], [0.8])[1]
        == "+0.100; mean +0.1000 (one seed, no standard error, 1 seed; ahead on 1, behind on 0)"
    )


@pytest.mark.parametrize("first, second", [([], []), ([0.9, 0.8], [0.9])])
def test_paired_comparison_needs_equally_long_non_empty_lists(first, second):
    with pytest.raises(ValueError, match="need two equally long, non-empty lists"):
        paired_comparison(first, second)
