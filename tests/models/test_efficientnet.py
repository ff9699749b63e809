from pathlib import Path

import pytest
import torch
from PIL import Image

from dfdetect.data.transforms import build_eval_transform
from dfdetect.models import WeightsError, create_model
from dfdetect.models.efficientnet import (
    VARIANTS,
    imagenet_efficientnet_lite,
    imagenet_efficientnet_lite0,
    packaged_weights_path,
)
from dfdetect.models.timm_models import preprocessing_of

# ImageNet classes 281-285: tabby, tiger cat, Persian, Siamese, Egyptian cat.
CAT_CLASSES = set(range(281, 286))


NATIVE_SIZE = {0: 224, 1: 240, 2: 260}


@pytest.mark.parametrize("variant", VARIANTS)
def test_packaged_weights_are_imagenet_a_cat_is_a_cat(variant: int) -> None:
    skimage_data = pytest.importorskip("skimage.data")
    network = imagenet_efficientnet_lite(variant).eval()  # strict load of the mapped keys
    preprocessing = preprocessing_of(network)
    assert preprocessing.mean == (0.5, 0.5, 0.5) and preprocessing.interpolation == "bicubic"
    assert preprocessing.input_size == NATIVE_SIZE[variant]
    image = Image.fromarray(skimage_data.chelsea())
    with torch.no_grad():
        top5 = network(build_eval_transform(preprocessing)(image)[None]).topk(5).indices[0].tolist()
    assert CAT_CLASSES & set(top5)


def test_random_init_is_not_a_cat_detector() -> None:
    """Guards the test above: without the weights the same check would fail (or pass only by chance)."""
    a = create_model("efficientnet_lite0", pretrained=False)
    b = create_model("efficientnet_lite0", pretrained=True)
    assert not torch.equal(a.backbone.network.conv_stem.weight, b.backbone.network.conv_stem.weight)


def test_detector_keeps_the_weights_and_the_preprocessing() -> None:
    model = create_model("efficientnet_lite0", pretrained=True)
    reference = imagenet_efficientnet_lite0()
    assert torch.equal(model.backbone.network.blocks[3][1].conv_dw.weight, reference.blocks[3][1].conv_dw.weight)
    assert model.preprocessing.std == (0.5, 0.5, 0.5)


@pytest.mark.parametrize("variant", VARIANTS)
def test_packaged_file_exists(variant: int) -> None:
    assert packaged_weights_path(variant).is_file()
    assert f"lite{variant}" in packaged_weights_path(variant).name


def test_lite_variants_do_not_take_each_others_weights() -> None:
    with pytest.raises(WeightsError, match="lite0"):
        imagenet_efficientnet_lite(1, weights_file=packaged_weights_path(0))


def test_corrupt_weights_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "lite0.pth"
    path.write_bytes(b"\x00" * 100)
    with pytest.raises(WeightsError, match="lite0.pth"):
        create_model("efficientnet_lite0", pretrained=True, weights_file=path)


def test_any_timm_model_by_name() -> None:
    model = create_model("timm/resnet18", image_size=64).eval()
    with torch.no_grad():
        assert model(torch.randn(2, 3, 64, 64)).shape == (2,)
    with pytest.raises(KeyError, match="unknown timm model"):
        create_model("timm/not_a_real_model_name")
    with pytest.raises(WeightsError, match="--weights-file"):
        create_model("timm/resnet18", pretrained=True)
