from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file
from torchvision.models import densenet121 as tv_densenet121

from dfdetect.models import (
    UnknownModelError,
    WeightsError,
    count_parameters,
    create_model,
    list_models,
    register_model,
)
from dfdetect.models.densenet import torchvision_weights_path

EXPECTED_PARAMETERS = {"own_cnn": 4_853_569, "densenet121": 7_480_193}


def test_the_studys_parameter_counts_are_exact() -> None:
    for name, expected in EXPECTED_PARAMETERS.items():
        model = create_model(name)
        assert count_parameters(model) == expected
        assert count_parameters(model, trainable_only=True) == expected  # all layers trainable


@pytest.mark.parametrize("name", list_models())
def test_every_registered_model_gives_one_logit_per_image(name: str) -> None:
    torch.manual_seed(0)
    model = create_model(name, image_size=64).eval()
    assert model.preprocessing.input_size == 64
    with torch.no_grad():
        logits = model(torch.randn(3, 3, 64, 64))
    assert logits.shape == (3,) and torch.isfinite(logits).all()
    assert dict(model.named_modules())[model.explain_layer] is not None


@pytest.mark.parametrize("name", list_models())
def test_every_registered_model_trains_one_step(name: str) -> None:
    model = create_model(name, image_size=32).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    images, labels = torch.randn(4, 3, 32, 32), torch.tensor([0.0, 1.0, 0.0, 1.0])
    loss = torch.nn.functional.binary_cross_entropy_with_logits(model(images), labels)
    loss.backward()
    optimizer.step()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_dropout_option_reaches_the_head() -> None:
    model = create_model("own_cnn", dropout=0.2)
    assert {m.p for m in model.head.modules() if isinstance(m, torch.nn.Dropout)} == {0.2}


def test_unknown_model_lists_the_known_ones() -> None:
    with pytest.raises(
        UnknownModelError,
        match="known models: densenet121, efficientnet_lite0, efficientnet_lite1, efficientnet_lite2, own_cnn",
    ):
        create_model("resnet_from_the_future")


def test_registering_a_name_twice_is_an_error() -> None:
    list_models()
    with pytest.raises(ValueError, match="already registered"):

        @register_model("duplicate")
        def own_cnn() -> None:  # pragma: no cover - never called
            raise AssertionError


def test_own_cnn_has_no_pretrained_weights() -> None:
    with pytest.raises(ValueError, match="no pretrained weights"):
        create_model("own_cnn", pretrained=True)


def test_densenet_pretrained_without_a_file_fails_at_once_naming_it(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    with pytest.raises(WeightsError) as error:
        create_model("densenet121", pretrained=True)
    message = str(error.value)
    assert "densenet121-a639ec97.pth" in message and str(torchvision_weights_path().parent) in message
    assert "--weights-file" in message


def test_densenet_loads_imagenet_weights_from_a_local_file(tmp_path: Path) -> None:
    torch.manual_seed(3)
    reference = tv_densenet121(weights=None)
    path = tmp_path / "densenet121.safetensors"
    save_file({k: v.contiguous() for k, v in reference.state_dict().items()}, str(path))
    model = create_model("densenet121", pretrained=True, weights_file=path)
    assert torch.equal(model.backbone[0].conv0.weight, reference.features.conv0.weight)


def test_densenet_accepts_torchvision_legacy_key_names(tmp_path: Path) -> None:
    reference = tv_densenet121(weights=None)
    # torchvision's published file predates num_batches_tracked and names layers 'norm.1'.
    legacy = {
        k.replace("denselayer1.norm1", "denselayer1.norm.1"): v
        for k, v in reference.state_dict().items()
        if not k.endswith("num_batches_tracked")
    }
    path = tmp_path / "legacy.pth"
    torch.save(legacy, path)
    model = create_model("densenet121", pretrained=True, weights_file=path)
    assert torch.equal(
        model.backbone[0].denseblock1.denselayer1.norm1.weight,
        reference.features.denseblock1.denselayer1.norm1.weight,
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"garbage bytes", "not a readable weights file"), (None, "not found")],
)
def test_bad_weights_files_are_named(tmp_path: Path, content: bytes | None, message: str) -> None:
    path = tmp_path / "weights.pth"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(WeightsError, match=rf"weights\.pth.*{message}|{message}.*weights\.pth"):
        create_model("densenet121", pretrained=True, weights_file=path)


def test_weights_of_another_model_do_not_fit(tmp_path: Path) -> None:
    path = tmp_path / "wrong.safetensors"
    save_file({"fc.weight": torch.zeros(2, 2)}, str(path))
    with pytest.raises(WeightsError, match="wrong.safetensors: weights do not fit"):
        create_model("densenet121", pretrained=True, weights_file=path)
