import pytest

from router.policy import least_loaded


def test_least_loaded_picks_fewest_in_flight_lowest_index_on_ties() -> None:
    assert least_loaded([3, 1, 1, 2]) == 1
    assert least_loaded([0, 0]) == 0


def test_least_loaded_skips_unhealthy() -> None:
    assert least_loaded([0, 5, 2], healthy=[False, True, True]) == 2
    with pytest.raises(LookupError):
        least_loaded([0, 1], healthy=[False, False])
