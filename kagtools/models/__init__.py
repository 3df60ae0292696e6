"""The models: scikit-learn-style estimators, registered by name.

Every registered model meets the scikit-learn estimator contract: hyper-parameters are plain
``__init__`` keywords (so ``clone`` and ``set_params`` work), learned state ends in ``_``, and
``fit(X, y, X_valid=None, y_valid=None)`` then ``predict_scores`` (and ``predict`` /
``predict_proba``). Classifiers return probabilities of the encoded classes ``0..K-1``; a
binary one returns the positive class's probability as a 1-D array from ``predict_scores``.
Each declares ``tasks``, the tasks it supports. The registry itself is
:mod:`kagtools.core.model_registry`.
"""

from kagtools.core.model_registry import (
    create_model,
    get_model_class,
    list_models,
    make_model,
    register_model,
)

__all__ = ["register_model", "create_model", "make_model", "list_models", "get_model_class"]
