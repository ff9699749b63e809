from pathlib import Path

from dfdetect.conventions import epoch_seed, sample_seed
from dfdetect.run_folder import RunFolder


def test_a_run_folder_names_every_file_and_finds_itself_from_a_checkpoint(tmp_path: Path) -> None:
    run = RunFolder(tmp_path / "run")
    assert run.best == tmp_path / "run" / "checkpoints" / "best.safetensors"
    assert run.last.name == "last.safetensors" and run.config.name == "config.yaml"
    assert run.evaluation("Test") == tmp_path / "run" / "eval-Test"
    assert RunFolder.of_checkpoint(run.best) == run
    assert RunFolder.of_checkpoint(tmp_path / "loose.safetensors") == RunFolder(tmp_path)
    assert run.test_metrics_file() is None
    run.evaluation("Test").mkdir(parents=True)
    (run.evaluation("Test") / "metrics.json").write_text("{}")
    assert run.test_metrics_file() == run.evaluation("Test") / "metrics.json"


def test_epoch_and_sample_seeds_keep_the_formula_checkpoints_were_made_with() -> None:
    # Changing these would make a resumed run differ from the epochs it continues.
    assert epoch_seed(3, 2) == 3 * 1_000_003 + 2
    assert sample_seed(3, 2, 7) == ((3 * 1_000_003 + 2) * 10_000_019 + 7) % 2**63
    assert epoch_seed(3, 2) != epoch_seed(2, 3)
