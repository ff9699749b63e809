"""A training run's folder as one object: where its config, history, checkpoints and evaluations live.

    run/
      config.yaml              the resolved configuration (`dfdetect train --config` reruns it)
      history.csv              one row per epoch
      accuracy.png, loss.png   learning curves
      bad_files.txt            what the pre-scan skipped
      landmarks.json           face landmarks of Train's real faces (--pseudo-fakes sbi-landmarks)
      autoencoder.safetensors  an auto-encoder trained on Train's real faces (--pseudo-fakes autoencoder)
      checkpoints/best.safetensors, last.safetensors (+ .json beside each)
      eval-<split>/metrics.json, confusion_matrix.png, roc_curve.png   written by `dfdetect evaluate`
      test/metrics.json        written by `dfdetect experiment`

No torch here: the CLI, the trainer, evaluation and the runtimes all ask this class for a path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

CHECKPOINTS = "checkpoints"
CHECKPOINT_SUFFIX = ".safetensors"


@dataclass(frozen=True)
class RunFolder:
    """The files of one run under `root`."""

    root: Path

    @classmethod
    def of_checkpoint(cls, checkpoint: Path) -> RunFolder:
        """The run a checkpoint file belongs to (its folder's parent when it sits in `checkpoints/`)."""
        folder = checkpoint.parent
        return cls(folder.parent if folder.name == CHECKPOINTS else folder)

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def history(self) -> Path:
        return self.root / "history.csv"

    @property
    def bad_files(self) -> Path:
        return self.root / "bad_files.txt"

    @property
    def landmarks(self) -> Path:
        """Face landmarks of the training images, for `--pseudo-fakes sbi-landmarks` (data/landmarks.py)."""
        return self.root / "landmarks.json"

    @property
    def autoencoder(self) -> Path:
        """The auto-encoder trained on the training images' real faces, for `--pseudo-fakes autoencoder`."""
        return self.root / "autoencoder.safetensors"

    @property
    def checkpoints(self) -> Path:
        return self.root / CHECKPOINTS

    def checkpoint(self, which: str = "best") -> Path:
        """`best` (the epoch early stopping keeps) or `last` (the one a resume starts from)."""
        return self.checkpoints / f"{which}{CHECKPOINT_SUFFIX}"

    @property
    def best(self) -> Path:
        return self.checkpoint("best")

    @property
    def last(self) -> Path:
        return self.checkpoint("last")

    def curve(self, metric: str) -> Path:
        """accuracy.png or loss.png."""
        return self.root / f"{metric}.png"

    def evaluation(self, split: str) -> Path:
        """The folder `dfdetect evaluate` writes a split's metrics and figures to."""
        return self.root / f"eval-{split}"

    @property
    def experiment_test(self) -> Path:
        """The folder `dfdetect experiment` writes the Test metrics to."""
        return self.root / "test"

    def test_metrics_file(self) -> Path | None:
        """The Test metrics written beside the run by `experiment` or `evaluate`, if any."""
        for candidate in (self.experiment_test / "metrics.json", self.evaluation("Test") / "metrics.json"):
            if candidate.is_file():
                return candidate
        return None
