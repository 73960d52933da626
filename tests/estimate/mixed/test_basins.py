"""The shared rules of the mixed-model paths' other-basin restarts."""

import numpy as np

from declaredesign.estimate.mixed.basins import clearly_lower, grid_local_minima, lowest_winners


def test_clearly_lower_is_relative_above_one_and_absolute_below():
    assert clearly_lower(1000.0 - 2e-6, 1000.0) and not clearly_lower(1000.0 - 5e-7, 1000.0)
    assert clearly_lower(0.5 - 2e-9, 0.5) and not clearly_lower(0.5 - 5e-10, 0.5)
    np.testing.assert_array_equal(clearly_lower(np.array([1.0, 3.0]), np.array([2.0, 2.0])),
                                  [True, False])


def test_lowest_winners_picks_each_datasets_lowest_winning_candidate():
    sims = np.array([2, 0, 2, 0, 1, 2])
    values = np.array([5.0, 3.0, 4.0, 1.0, 0.0, 6.0])
    wins = np.array([True, True, True, False, False, True])
    # dataset 0: candidate 3 is lower but does not win; dataset 1 has no winner
    np.testing.assert_array_equal(lowest_winners(sims, values, wins), [1, 2])


def test_grid_local_minima_one_and_two_axes():
    # not finite counts as high; of a run of equal values the first is the minimum
    v = np.array([[3.0, 1.0, 2.0, 2.0, 0.5, np.inf, 4.0],
                  [np.nan, 2.0, 2.0, 3.0, 1.0, 1.0, 0.0]])
    np.testing.assert_array_equal(grid_local_minima(v, (7,)),
                                  [[False, True, False, False, True, False, True],
                                   [False, False, False, False, True, False, True]])
    # a minimum must be one along every axis
    g = np.array([[1.0, 0.0, 2.0], [3.0, 5.0, 4.0], [0.5, 6.0, 7.0]]).reshape(1, 9)
    np.testing.assert_array_equal(grid_local_minima(g, (3, 3)).reshape(3, 3),
                                  [[False, True, False], [False, False, False],
                                   [True, False, False]])
