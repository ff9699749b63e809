import numpy as np
import pytest
from sklearn import metrics as skm

from dfdetect.metrics import METRIC_KEYS, classification_metrics, equal_error_rate


@pytest.fixture
def scores() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 2, 400)
    p_real = np.clip(0.35 * labels + 0.65 * rng.random(400), 0, 1)
    return labels, p_real


def test_keys_are_exactly_the_documented_ones(scores) -> None:
    assert tuple(classification_metrics(*scores)) == METRIC_KEYS


def test_against_scikit_learn(scores) -> None:
    labels, p_real = scores
    result = classification_metrics(labels, p_real, threshold=0.6)
    predicted = (p_real >= 0.6).astype(int)
    assert result["accuracy"] == pytest.approx(skm.accuracy_score(labels, predicted))
    assert result["sensitivity"] == pytest.approx(skm.recall_score(labels, predicted, pos_label=1))
    assert result["specificity"] == pytest.approx(skm.recall_score(labels, predicted, pos_label=0))
    assert result["precision"] == pytest.approx(skm.precision_score(labels, predicted))
    assert result["f1"] == pytest.approx(skm.f1_score(labels, predicted))
    assert result["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(labels, predicted))
    assert result["auc"] == pytest.approx(skm.roc_auc_score(labels, p_real))
    assert result["average_precision"] == pytest.approx(skm.average_precision_score(labels, p_real))
    assert result["log_loss"] == pytest.approx(skm.log_loss(labels, p_real))
    assert result["confusion_matrix"] == skm.confusion_matrix(labels, predicted).tolist()
    assert result["n_real"] == int(labels.sum()) and result["n_fake"] == int((1 - labels).sum())


def test_confusion_matrix_convention_fake_0_real_1() -> None:
    # two fakes (one called real), three reals (all called real)
    result = classification_metrics([0, 0, 1, 1, 1], [0.1, 0.9, 0.8, 0.7, 0.6])
    assert result["confusion_matrix"] == [[1, 1], [0, 3]]
    assert result["sensitivity"] == 1.0 and result["specificity"] == 0.5


def test_equal_error_rate_known_values() -> None:
    assert equal_error_rate([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 0.0
    assert equal_error_rate([0, 0, 1, 1], [0.9, 0.8, 0.2, 0.1]) == 1.0
    assert equal_error_rate([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9]) == pytest.approx(0.5)


def test_equal_error_rate_is_where_fpr_meets_fnr(scores) -> None:
    labels, p_real = scores
    fpr, tpr, _ = skm.roc_curve(labels, p_real)
    eer = equal_error_rate(labels, p_real)
    gap = np.abs((1 - tpr) - fpr)
    assert min(fpr[np.argmin(gap)], 1 - tpr[np.argmin(gap)]) - 0.02 <= eer
    assert eer <= max(fpr[np.argmin(gap)], 1 - tpr[np.argmin(gap)]) + 0.02


def test_single_class_leaves_ranking_metrics_undefined() -> None:
    result = classification_metrics([1, 1, 1], [0.2, 0.7, 0.9])
    assert result["auc"] is None and result["eer"] is None and result["specificity"] is None
    assert result["sensitivity"] == pytest.approx(2 / 3)


@pytest.mark.parametrize(
    ("labels", "p_real", "message"),
    [
        ([0, 1], [0.5], "2 values"),
        ([0, 2], [0.1, 0.2], "labels must be"),
        ([0, 1], [-1.0, 3.0], "probabilities"),
        ([], [], "no samples"),
    ],
)
def test_bad_inputs(labels, p_real, message) -> None:
    with pytest.raises(ValueError, match=message):
        classification_metrics(labels, p_real)
