"""The Ensemble detector: mean logit over members and test-time views; members must share preprocessing."""

from __future__ import annotations

import pytest
import torch

from dfdetect.errors import ConfigError
from dfdetect.models import create_model
from dfdetect.models.ensemble import Ensemble, build_ensemble


def tiny(seed: int, size: int = 32):  # type: ignore[no-untyped-def]
    torch.manual_seed(seed)
    return create_model("own_cnn", dropout=0.2, image_size=size).eval()


def test_the_score_is_the_mean_logit_of_the_members() -> None:
    first, second = tiny(0), tiny(1)
    images = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected = (first(images) + second(images)) / 2
        got = Ensemble([first, second]).eval()(images)
    assert torch.allclose(got, expected, atol=1e-6)
    assert not torch.allclose(first(images), second(images))  # the two members really differ


def test_weights_weigh_each_members_logit_over_its_views() -> None:
    first, second = tiny(0), tiny(1)
    images = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    ensemble = Ensemble([first, second], tta="hflip", weights=[3, 1]).eval()
    with torch.no_grad():
        alone = [(member(images) + member(images.flip(3))) / 2 for member in (first, second)]
        assert torch.allclose(ensemble(images), 0.75 * alone[0] + 0.25 * alone[1], atol=1e-6)
        assert not torch.allclose(ensemble(images), (alone[0] + alone[1]) / 2, atol=1e-4)
    assert ensemble.weights == [0.75, 0.25] and ensemble.weighted
    assert not Ensemble([first, second], weights=[2, 2]).weighted  # equal weights are the plain mean
    with pytest.raises(ConfigError, match="1 ensemble weight"):
        Ensemble([first, second], weights=[1])
    with pytest.raises(ConfigError, match="not all 0"):
        Ensemble([first, second], weights=[1, -1])


def test_hflip_averages_the_image_and_its_mirror_so_mirrors_score_alike() -> None:
    member = tiny(0)
    images = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    ensemble = Ensemble([member], tta="hflip").eval()
    with torch.no_grad():
        expected = (member(images) + member(images.flip(3))) / 2
        assert torch.allclose(ensemble(images), expected, atol=1e-6)
        assert torch.allclose(ensemble(images), ensemble(images.flip(3)), atol=1e-5)
        assert not torch.allclose(member(images), member(images.flip(3)))  # the member alone is not symmetric


def test_members_with_different_preprocessing_are_refused() -> None:
    with pytest.raises(ConfigError, match="same preprocessing"):
        Ensemble([tiny(0, 32), tiny(1, 64)])


def test_unknown_tta_and_no_members_are_refused() -> None:
    with pytest.raises(ConfigError, match="test-time augmentation"):
        Ensemble([tiny(0)], tta="rotate")
    with pytest.raises(ConfigError, match="at least one member"):
        Ensemble([])


def test_spec_rebuilds_the_same_architecture_and_state() -> None:
    ensemble = Ensemble([tiny(0), tiny(1)], tta="hflip").eval()
    spec = ensemble.spec([{"source": "a"}, {"source": "b"}])
    assert [member["model"] for member in spec["members"]] == ["own_cnn", "own_cnn"]
    assert spec["members"][0]["dropout"] == pytest.approx(0.2) and spec["tta"] == "hflip"
    rebuilt = build_ensemble(spec, ensemble.preprocessing.to_dict())
    rebuilt.load_state_dict(ensemble.state_dict())  # strict: same keys and shapes
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(rebuilt.eval()(images), ensemble(images))


def test_spec_keeps_unequal_weights_only() -> None:
    members = [tiny(0), tiny(1)]
    sources = [{"source": "a"}, {"source": "b"}]
    assert "weights" not in Ensemble(members).spec(sources)
    weighted = Ensemble(members, weights=[0.8, 0.2]).eval()
    spec = weighted.spec(sources)
    assert spec["weights"] == pytest.approx([0.8, 0.2])
    rebuilt = build_ensemble(spec, weighted.preprocessing.to_dict())
    rebuilt.load_state_dict(weighted.state_dict())
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(rebuilt.eval()(images), weighted(images))


def test_grad_cam_explains_the_first_member() -> None:
    first = tiny(0)
    ensemble = Ensemble([first, tiny(1)])
    assert ensemble.explained() is first
    assert dict(first.named_modules())[first.explain_layer] is dict(ensemble.named_modules())[ensemble.explain_layer]
