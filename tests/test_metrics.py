import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from flowrec.metrics import mae, nmae, rmse

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)


def pairs(min_size=1, max_size=50):
    return st.integers(min_size, max_size).flatmap(
        lambda n: st.tuples(arrays(np.float64, n, elements=finite), arrays(np.float64, n, elements=finite))
    )


def test_known_values():
    assert rmse([1, 2, 3], [1, 2, 5]) == pytest.approx(np.sqrt(4 / 3))
    assert mae([1, 2, 3], [1, 2, 5]) == pytest.approx(2 / 3)
    # Jester's scale is -10..10, so NMAE divides MAE by 20
    assert nmae([-10, 10], [-8, 6], rating_scale=(-10, 10)) == pytest.approx(3 / 20)


@given(pairs())
def test_rmse_bounds_mae(pair):
    y_true, y_pred = pair
    error_mae, error_rmse = mae(y_true, y_pred), rmse(y_true, y_pred)
    assert error_mae >= 0
    assert error_rmse >= error_mae * (1 - 1e-12) - 1e-9
    assert error_rmse <= np.max(np.abs(y_true - y_pred)) * (1 + 1e-12) + 1e-9


@given(pairs())
def test_metrics_symmetric_and_zero_on_equal(pair):
    y_true, y_pred = pair
    assert rmse(y_true, y_pred) == pytest.approx(rmse(y_pred, y_true))
    assert mae(y_true, y_true) == 0.0
    assert rmse(y_pred, y_pred) == 0.0


@settings(max_examples=50)
@given(pairs(), finite, st.floats(min_value=1e-3, max_value=1e3))
def test_nmae_is_mae_over_scale_width(pair, low, width):
    y_true, y_pred = pair
    assert nmae(y_true, y_pred, (low, low + width)) == pytest.approx(mae(y_true, y_pred) / width)


@pytest.mark.parametrize("metric", [rmse, mae])
def test_bad_input_is_rejected(metric):
    with pytest.raises(ValueError, match="same length, got 2 and 1"):
        metric([1, 2], [1])
    with pytest.raises(ValueError, match="empty"):
        metric([], [])
    with pytest.raises(ValueError, match=r"y_pred contains 1 NaN or infinite values, first at positions \[1\]"):
        metric([1, 2], [1, np.nan])


@pytest.mark.parametrize("scale", [(5, 1), (1, 1), (0, np.inf), "1-5", (1,)])
def test_nmae_rejects_bad_scale(scale):
    with pytest.raises(ValueError, match="rating_scale"):
        nmae([1], [2], scale)
