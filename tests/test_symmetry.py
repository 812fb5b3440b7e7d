"""medivision.data.symmetry: the 8 symmetries of the square that augment draws and the self-ensemble averages."""

import numpy as np
import pytest
import torch

from medivision.data.symmetry import SHAPE_KEEPING, SYMMETRIES, turn, turn_back


@pytest.mark.parametrize("shape", [(2, 1, 5, 5), (2, 1, 4, 7)])
def test_turn_back_undoes_each_symmetry_and_the_eight_are_distinct(shape):
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    turned = [turn(x, transform) for transform in range(SYMMETRIES)]
    rotations = [torch.rot90(torch.from_numpy(x), k, dims=(-2, -1)) for k in range(4)]
    for transform, y in enumerate(turned):
        assert np.array_equal(turn_back(y, transform), x)
        # rot90 by k, then for 4..7 a left-right flip
        expected = rotations[transform % 4].flip(-1) if transform >= 4 else rotations[transform % 4]
        assert torch.equal(torch.from_numpy(y), expected)
    assert len({(y.shape, y.tobytes()) for y in turned}) == SYMMETRIES
    for transform in SHAPE_KEEPING:  # what augment draws for non-square images
        assert turned[transform].shape == x.shape
