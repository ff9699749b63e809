"""MTCNN face detection (Zhang et al. 2016), the detector the DFDC winner cropped faces with.

The three networks and the cascade follow facenet-pytorch's port (MIT, Copyright (c) 2019 Timothy Esler; see
src/dfdetect/weights/LICENSE-facenet-pytorch.md); its weights ship inside dfdetect as safetensors, converted by
tools/convert_mtcnn_weights.py, since facenet-pytorch itself pins an old torch. The cascade: P-Net proposes
boxes over an image pyramid, R-Net and O-Net reject and refine them at 24 and 48 px; O-Net also gives five
landmarks (eyes, nose, mouth corners). The networks were trained on transposed images, hence the permutes.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file
from torch import nn
from torch.nn.functional import interpolate
from torchvision.ops import batched_nms

WEIGHTS = "mtcnn.safetensors"


class PNet(nn.Module):
    """Proposal network: a fully convolutional 12 px face / not-face classifier with box offsets."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 10, 3), nn.PReLU(10)
        self.pool1 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(10, 16, 3), nn.PReLU(16)
        self.conv3, self.prelu3 = nn.Conv2d(16, 32, 3), nn.PReLU(32)
        self.conv4_1, self.conv4_2 = nn.Conv2d(32, 2, 1), nn.Conv2d(32, 4, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
        return self.conv4_2(x), torch.softmax(self.conv4_1(x), dim=1)


class RNet(nn.Module):
    """Refinement network on 24 px crops."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 28, 3), nn.PReLU(28)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(28, 48, 3), nn.PReLU(48)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3, self.prelu3 = nn.Conv2d(48, 64, 2), nn.PReLU(64)
        self.dense4, self.prelu4 = nn.Linear(576, 128), nn.PReLU(128)
        self.dense5_1, self.dense5_2 = nn.Linear(128, 2), nn.Linear(128, 4)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.prelu3(self.conv3(x)).permute(0, 3, 2, 1).contiguous()
        x = self.prelu4(self.dense4(x.view(x.shape[0], -1)))
        return self.dense5_2(x), torch.softmax(self.dense5_1(x), dim=1)


class ONet(nn.Module):
    """Output network on 48 px crops: score, box offsets and five landmarks."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 32, 3), nn.PReLU(32)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(32, 64, 3), nn.PReLU(64)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3, self.prelu3 = nn.Conv2d(64, 64, 3), nn.PReLU(64)
        self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv4, self.prelu4 = nn.Conv2d(64, 128, 2), nn.PReLU(128)
        self.dense5, self.prelu5 = nn.Linear(1152, 256), nn.PReLU(256)
        self.dense6_1, self.dense6_2, self.dense6_3 = nn.Linear(256, 2), nn.Linear(256, 4), nn.Linear(256, 10)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.pool3(self.prelu3(self.conv3(x)))
        x = self.prelu4(self.conv4(x)).permute(0, 3, 2, 1).contiguous()
        x = self.prelu5(self.dense5(x.view(x.shape[0], -1)))
        return self.dense6_2(x), self.dense6_3(x), torch.softmax(self.dense6_1(x), dim=1)


@dataclass(frozen=True)
class Detection:
    """One face: box (left, top, right, bottom) in pixels, confidence in [0, 1], five (x, y) landmarks."""

    box: tuple[float, float, float, float]
    score: float
    landmarks: tuple[tuple[float, float], ...]


def weights_path() -> Path:
    return Path(str(resources.files("dfdetect.weights") / WEIGHTS))


def _normalise(patches: torch.Tensor) -> torch.Tensor:
    return (patches - 127.5) * 0.0078125


def _square(boxes: torch.Tensor) -> torch.Tensor:
    """Grow each box to a square around its centre (MTCNN's rerec)."""
    boxes = boxes.clone()
    height, width = boxes[:, 3] - boxes[:, 1], boxes[:, 2] - boxes[:, 0]
    side = torch.maximum(width, height)
    boxes[:, 0] += width * 0.5 - side * 0.5
    boxes[:, 1] += height * 0.5 - side * 0.5
    boxes[:, 2:4] = boxes[:, :2] + side[:, None]
    return boxes


def _regress(boxes: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """Apply box offsets, relative to the box's size (MTCNN's bbreg)."""
    boxes = boxes.clone()
    width = boxes[:, 2] - boxes[:, 0] + 1
    height = boxes[:, 3] - boxes[:, 1] + 1
    boxes[:, :4] += offsets * torch.stack([width, height, width, height], dim=1)
    return boxes


def _crops(image: torch.Tensor, boxes: torch.Tensor, size: int) -> torch.Tensor:
    """Each box cut out of the (1, 3, H, W) image (clipped at the borders) and resized to size x size."""
    height, width = image.shape[2:]
    corners = boxes[:, :4].trunc().int().tolist()
    patches = []
    for left, top, right, bottom in corners:
        left, top = max(left, 1), max(top, 1)
        right, bottom = min(right, width), min(bottom, height)
        patch = image[:, :, top - 1 : bottom, left - 1 : right]
        if patch.shape[2] == 0 or patch.shape[3] == 0:
            patch = image[:, :, :1, :1]  # a box outside the image: a dummy the next stage rejects
        patches.append(interpolate(patch, size=(size, size), mode="area"))
    return torch.cat(patches)


def _nms_min(boxes: torch.Tensor, threshold: float) -> torch.Tensor:
    """Non-maximum suppression where overlap is intersection over the smaller box (O-Net's last step)."""
    order = torch.argsort(boxes[:, 4], descending=True).tolist()
    area = (boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1)
    keep: list[int] = []
    while order:
        best, order = order[0], order[1:]
        keep.append(best)
        if not order:
            break
        rest = torch.tensor(order)
        inter_w = torch.minimum(boxes[best, 2], boxes[rest, 2]) - torch.maximum(boxes[best, 0], boxes[rest, 0]) + 1
        inter_h = torch.minimum(boxes[best, 3], boxes[rest, 3]) - torch.maximum(boxes[best, 1], boxes[rest, 1]) + 1
        overlap = inter_w.clamp(min=0) * inter_h.clamp(min=0) / torch.minimum(area[best], area[rest])
        order = [index for index, o in zip(order, overlap.tolist(), strict=True) if o <= threshold]
    return torch.tensor(keep, dtype=torch.long)


class MTCNN:
    """The three networks with their weights, and `detect(image)`; safe to call from several threads."""

    def __init__(
        self,
        min_face: int = 20,
        thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7),
        factor: float = 0.709,
        weights: Path | None = None,
    ) -> None:
        self.min_face, self.thresholds, self.factor = min_face, thresholds, factor
        self.pnet, self.rnet, self.onet = PNet().eval(), RNet().eval(), ONet().eval()
        state = load_file(str(weights or weights_path()))
        for name, network in (("pnet", self.pnet), ("rnet", self.rnet), ("onet", self.onet)):
            network.load_state_dict({k.split(".", 1)[1]: v for k, v in state.items() if k.startswith(name + ".")})
        self._lock = threading.Lock()  # torch modules are safe for inference, but one cascade at a time is cheaper

    def scales(self, height: int, width: int) -> list[float]:
        """The image pyramid: P-Net sees faces of 12 px, so scale 12 / min_face, then by `factor` down to 12 px."""
        scale, shortest, scales = 12.0 / self.min_face, min(height, width) * 12.0 / self.min_face, []
        while shortest >= 12:
            scales.append(scale)
            scale *= self.factor
            shortest *= self.factor
        return scales

    @torch.inference_mode()
    def detect(self, image: np.ndarray) -> list[Detection]:
        """Faces in an RGB uint8 (H, W, 3) image, most confident first."""
        with self._lock:
            return self._detect(torch.from_numpy(np.array(image, dtype=np.float32)).permute(2, 0, 1)[None])

    def _detect(self, image: torch.Tensor) -> list[Detection]:
        height, width = image.shape[2:]
        proposals = []
        for scale in self.scales(height, width):
            scaled = interpolate(image, size=(int(height * scale + 1), int(width * scale + 1)), mode="area")
            offsets, probabilities = self.pnet(_normalise(scaled))
            found = self._proposals(offsets[0], probabilities[0, 1], scale)
            if len(found):
                proposals.append(found[batched_nms(found[:, :4], found[:, 4], torch.zeros(len(found)), 0.5)])
        if not proposals:
            return []
        boxes = torch.cat(proposals)
        boxes = boxes[batched_nms(boxes[:, :4], boxes[:, 4], torch.zeros(len(boxes)), 0.7)]
        size = torch.stack([boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]] * 2, dim=1)
        boxes = _square(torch.cat([boxes[:, :4] + boxes[:, 5:9] * size, boxes[:, 4:5]], dim=1))

        offsets, probabilities = self.rnet(_normalise(_crops(image, boxes, 24)))
        keep = probabilities[:, 1] > self.thresholds[1]
        boxes = torch.cat([boxes[keep, :4], probabilities[keep, 1:2]], dim=1)
        if not len(boxes):
            return []
        pick = batched_nms(boxes[:, :4], boxes[:, 4], torch.zeros(len(boxes)), 0.7)
        boxes = _square(_regress(boxes[pick], offsets[keep][pick]))

        offsets, points, probabilities = self.onet(_normalise(_crops(image, boxes, 48)))
        keep = probabilities[:, 1] > self.thresholds[2]
        boxes, points, offsets = (
            torch.cat([boxes[keep, :4], probabilities[keep, 1:2]], dim=1),
            points[keep],
            offsets[keep],
        )
        if not len(boxes):
            return []
        width_i = (boxes[:, 2] - boxes[:, 0] + 1)[:, None]
        height_i = (boxes[:, 3] - boxes[:, 1] + 1)[:, None]
        xs = width_i * points[:, :5] + boxes[:, 0:1] - 1
        ys = height_i * points[:, 5:10] + boxes[:, 1:2] - 1
        boxes = _regress(boxes, offsets)
        pick = _nms_min(boxes, 0.7)
        return [
            Detection(
                tuple(float(v) for v in boxes[i, :4].tolist()),  # type: ignore[arg-type]
                float(boxes[i, 4]),
                tuple((float(x), float(y)) for x, y in zip(xs[i].tolist(), ys[i].tolist(), strict=True)),
            )
            for i in pick.tolist()
        ]

    def _proposals(self, offsets: torch.Tensor, probabilities: torch.Tensor, scale: float) -> torch.Tensor:
        """P-Net's cells above the first threshold as boxes in the image: (x1, y1, x2, y2, score, 4 offsets)."""
        stride, cell = 2, 12
        mask = probabilities >= self.thresholds[0]
        cells = mask.nonzero().float().flip(1)  # (x, y) of each cell
        first = ((stride * cells + 1) / scale).floor()
        last = ((stride * cells + cell) / scale).floor()
        return torch.cat([first, last, probabilities[mask][:, None], offsets[:, mask].permute(1, 0)], dim=1)


_SHARED: dict[int, MTCNN] = {}
_SHARED_LOCK = threading.Lock()


def shared_detector(min_face: int = 20) -> MTCNN:
    """One MTCNN per process and smallest face size, built at first use: `--crop-face`, videos, the server's
    threads and the pseudo-fake DataLoader workers load the weights once each."""
    with _SHARED_LOCK:
        if min_face not in _SHARED:
            _SHARED[min_face] = MTCNN(min_face=min_face)
        return _SHARED[min_face]
