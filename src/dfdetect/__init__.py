"""dfdetect: train, tune, evaluate, explain and serve CNN detectors of deepfake face images.

Labels follow the study this project reproduces: Fake = 0, Real = 1. A model's logit is for Real.

    >>> import dfdetect
    >>> detector = dfdetect.load()                              # the detector shipped with dfdetect  # doctest: +SKIP
    >>> [(p.label, round(p.p_fake, 3)) for p in detector.predict(["face.jpg"])]                      # doctest: +SKIP
    [('fake', 0.912)]

See dfdetect.api for `load`, `train` and `evaluate`. Importing dfdetect does not import torch.
"""

from dfdetect.api import Detector, Explanation, evaluate, load, train
from dfdetect.conventions import CLASS_NAMES, DEFAULT_THRESHOLD, METADATA_KEY
from dfdetect.conventions import VERSION as __version__
from dfdetect.runtime.base import Prediction

__all__ = [
    "CLASS_NAMES",
    "DEFAULT_THRESHOLD",
    "METADATA_KEY",
    "Detector",
    "Explanation",
    "Prediction",
    "__version__",
    "evaluate",
    "load",
    "train",
]
