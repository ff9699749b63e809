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


def test_expected_calibration_error_and_brier_by_hand() -> None:
    from dfdetect.metrics import brier_score, expected_calibration_error

    labels = np.array([1, 0, 1, 1])
    scores = np.array([0.9, 0.9, 0.1, 0.1])
    # Two bins used: {0.9, 0.9} holds one real (0.5) -> gap 0.4; {0.1, 0.1} holds two reals (1.0) -> gap 0.9.
    assert expected_calibration_error(labels, scores) == pytest.approx(0.5 * 0.4 + 0.5 * 0.9)
    assert brier_score(labels, scores) == pytest.approx((0.01 + 0.81 + 0.81 + 0.81) / 4)
    assert expected_calibration_error(np.array([1, 0]), np.array([1.0, 0.0])) == 0.0


def test_interval_metrics_equal_the_full_metrics() -> None:
    from dfdetect.metrics import INTERVAL_METRICS, interval_metrics

    generator = np.random.default_rng(3)
    labels = generator.integers(0, 2, 300)
    scores = np.clip(labels * 0.3 + generator.random(300) * 0.7, 0, 1)
    full = classification_metrics(labels, scores, 0.55)
    lean = interval_metrics(labels, scores, 0.55)
    for key in INTERVAL_METRICS:
        assert lean[key] == pytest.approx(full[key], abs=1e-12), key


def test_bootstrap_intervals_contain_the_estimate_shrink_and_reproduce() -> None:
    from dfdetect.metrics import bootstrap_intervals

    generator = np.random.default_rng(0)

    def sample(n: int) -> tuple[np.ndarray, np.ndarray]:
        labels = generator.integers(0, 2, n)
        return labels, np.clip(labels * 0.3 + generator.random(n) * 0.7, 0, 1)

    small, large = sample(100), sample(2000)
    widths = []
    for labels, scores in (small, large):
        intervals = bootstrap_intervals(labels, scores, resamples=300, seed=1)
        point = classification_metrics(labels, scores)
        for key in ("accuracy", "auc", "eer"):
            low, high = intervals[key]
            assert low <= point[key] <= high, key
        widths.append(intervals["auc"][1] - intervals["auc"][0])
    assert widths[1] < widths[0] / 2  # 20x the images: about 1/sqrt(20) the width
    assert bootstrap_intervals(*small, resamples=50, seed=7) == bootstrap_intervals(*small, resamples=50, seed=7)
    one_class = bootstrap_intervals(np.ones(20, dtype=int), np.linspace(0, 1, 20), resamples=20)
    assert one_class["auc"] is None and one_class["accuracy"] is not None
