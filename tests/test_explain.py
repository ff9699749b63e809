from pathlib import Path

import pytest
from PIL import Image

from dfdetect.engine.trainer import fit
from dfdetect.explain import gradcam_heatmaps, overlay
from dfdetect.models import list_models
from dfdetect.runtime.torch_backend import TorchPredictor
from tests.conftest import tiny_config


@pytest.mark.parametrize("name", list_models())
def test_gradcam_for_every_registered_model(name: str, tiny_dataset: Path, tmp_path: Path) -> None:
    # A briefly trained model (an untrained one can legitimately give an all-zero map), at 96 px so that
    # networks with stride 32 still have a 3x3 feature map to localise on; own_cnn (stride 8) has 4x4 at 32 px.
    size = 32 if name == "own_cnn" else 96
    config = tiny_config(tiny_dataset, tmp_path / name, model=name, image_size=size, epochs=2, lr=3e-3)
    result = fit(config)
    assert result.model is not None
    predictor = TorchPredictor(result.model, device="cpu")
    paths = (
        sorted((tiny_dataset / "Test" / "Fake").glob("*.jpg"))[:2]
        + sorted((tiny_dataset / "Test" / "Real").glob("*.jpg"))[:2]
    )
    images = [Image.open(path).convert("RGB").resize((48 + 8 * i, 40 + 4 * i)) for i, path in enumerate(paths)]
    heatmaps, p_real = gradcam_heatmaps(predictor, images)
    assert [heatmap.shape for heatmap in heatmaps] == [(image.height, image.width) for image in images]
    assert all(heatmap.min() >= 0 and heatmap.max() <= 1 for heatmap in heatmaps)
    assert max(heatmap.std() for heatmap in heatmaps) > 0.01  # not constant
    assert p_real.shape == (4,)
    blended = overlay(images[0], heatmaps[0])
    assert blended.size == images[0].size and blended.mode == "RGB"
