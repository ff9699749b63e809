"""Grad-CAM heatmaps (pytorch-grad-cam) for every registered model, on its last spatial feature map."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.image import show_cam_on_image
from pytorch_grad_cam.utils.model_targets import BinaryClassifierOutputTarget

from dfdetect.data.images import load_rgb
from dfdetect.faces import DEFAULT_MARGIN, crop_box
from dfdetect.photos import PhotoPrediction, draw_faces, face_as_detected
from dfdetect.runtime import Prediction
from dfdetect.runtime.torch_backend import TorchPredictor

# Grad-CAM hooks the model while it runs: one explanation at a time per process.
_LOCK = threading.Lock()


def gradcam_heatmaps(predictor: TorchPredictor, images: Sequence[Image.Image]) -> tuple[list[np.ndarray], np.ndarray]:
    """Heatmaps in [0, 1] at each image's own size (for the predicted class), and P(Real) per image."""
    model = predictor.model.explained()  # an ensemble explains its first member
    layer = dict(model.named_modules())[model.explain_layer]
    batch = predictor.preprocess(images).to(predictor.device)
    p_real = predictor.calibrated_scores(predictor.predict_tensor(batch))  # the whole detector's score
    with _LOCK, GradCAM(model=model, target_layers=[layer]) as cam:
        # The model has one logit (for Real): explain +logit for images called real, -logit for fakes.
        targets = [BinaryClassifierOutputTarget(int(p >= predictor.threshold)) for p in p_real]
        maps = cam(input_tensor=batch, targets=targets)
    resized = [
        np.asarray(Image.fromarray(np.uint8(np.clip(m, 0, 1) * 255)).resize(image.size, Image.Resampling.BILINEAR))
        / 255.0
        for m, image in zip(maps, images, strict=True)
    ]
    return resized, p_real


def overlay(image: Image.Image, heatmap: np.ndarray) -> Image.Image:
    """The heatmap blended over the image (jet colour map), same size as the image."""
    rgb = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return Image.fromarray(show_cam_on_image(rgb, heatmap.astype(np.float32), use_rgb=True, image_weight=0.55))


def write_explanations(
    predictor: TorchPredictor,
    predictions: Sequence[Prediction],
    folder: Path,
) -> list[Path]:
    """A Grad-CAM overlay `<stem>.gradcam.png` in `folder` for each prediction that has no error."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for prediction in predictions:
        if prediction.error:
            continue
        image = load_rgb(Path(prediction.path))
        heatmaps, _ = gradcam_heatmaps(predictor, [image])
        target = folder / f"{Path(prediction.path).stem}.gradcam.png"
        overlay(image, heatmaps[0]).save(target)
        written.append(target)
    return written


def write_face_explanations(
    predictor: TorchPredictor, photos: Sequence[PhotoPrediction], folder: Path, margin: float = DEFAULT_MARGIN
) -> list[Path]:
    """Per photo, `<stem>.gradcam.png`: each face's Grad-CAM blended into its crop, and its box, verdict and
    p_fake drawn on the photo; a photo scored as it is gets the whole image's Grad-CAM."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for photo in photos:
        if photo.row["error"]:
            continue
        image = load_rgb(Path(photo.row["path"]))
        target = folder / f"{Path(photo.row['path']).stem}.gradcam.png"
        written.append(target)
        if not photo.faces:  # scored as it is (framing auto: a face crop, or no face found)
            overlay(image, gradcam_heatmaps(predictor, [image])[0][0]).save(target)
            continue
        canvas = image.copy()
        boxes = [crop_box(image, face_as_detected(face), margin) for face in photo.faces]
        crops = [image.crop(box) for box in boxes]
        heatmaps, _ = gradcam_heatmaps(predictor, crops)  # every face of the photo in one pass
        for box, crop, heatmap in zip(boxes, crops, heatmaps, strict=True):
            canvas.paste(overlay(crop, heatmap), box[:2])
        draw_faces(canvas, photo.faces, 1 - predictor.threshold).save(target)
    return written
