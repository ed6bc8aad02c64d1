import numpy as np
import pytest
from sklearn.base import clone

from graphtag.base import Estimator, check_is_fitted
from graphtag.errors import GraphtagError


class Inner(Estimator):
    def __init__(self, alpha=1.0):
        self.alpha = alpha


class Outer(Estimator):
    def __init__(self, inner=None, k=3, weights=None):
        self.inner = inner
        self.k = k
        self.weights = weights

    def fit(self):
        self.result_ = self.k
        return self


def test_get_params_lists_init_arguments_and_nested():
    est = Outer(inner=Inner(alpha=2.0), k=4)
    assert est.get_params(deep=False) == {"inner": est.inner, "k": 4, "weights": None}
    deep = est.get_params()
    assert deep["inner__alpha"] == 2.0 and deep["k"] == 4


def test_set_params_round_trips_and_reaches_nested():
    est = Outer(inner=Inner())
    assert est.set_params(k=7, inner__alpha=0.5) is est
    assert est.k == 7 and est.inner.alpha == 0.5


def test_set_params_rejects_unknown_names():
    with pytest.raises(GraphtagError, match=r"has no parameter 'kk'.*'inner', 'k', 'weights'"):
        Outer().set_params(kk=1)


def test_sklearn_clone_gives_unfitted_copy_with_same_params():
    w = np.arange(3.0)
    est = Outer(inner=Inner(alpha=2.0), k=5, weights=w).fit()
    copy = clone(est)
    assert copy is not est and not hasattr(copy, "result_")
    assert copy.k == 5 and copy.inner is not est.inner and copy.inner.alpha == 2.0
    assert np.array_equal(copy.weights, w)


def test_repr_shows_non_default_params_even_for_arrays():
    assert repr(Outer(k=4)) == "Outer(k=4)"
    assert repr(Outer(weights=np.zeros(2))).startswith("Outer(weights=array(")


def test_check_is_fitted_names_the_estimator():
    with pytest.raises(GraphtagError, match="this Outer is not fitted yet"):
        check_is_fitted(Outer(), "result_")
    check_is_fitted(Outer().fit(), "result_")


def test_var_kwargs_are_refused():
    class Bad(Estimator):
        def __init__(self, **kw):
            pass

    with pytest.raises(TypeError, match="must not take"):
        Bad().get_params()


def test_with_params_builds_an_unfitted_copy_with_changes():
    est = Outer(k=5).fit()
    new = est.with_params(k=6)
    assert type(new) is Outer and new.k == 6 and est.k == 5 and not hasattr(new, "result_")
    with pytest.raises(GraphtagError, match="has no parameter 'q'"):
        est.with_params(q=1)
