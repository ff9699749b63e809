"""FastAPI app over one TorchPredictor: JSON predictions, Grad-CAM PNGs, model info, a web page.

Bad input always gets a 4xx with a JSON body {"error": ..., "detail": ...}: a request over the upload limit
413, an image over the pixel limit (a decompression bomb) 413 without being decoded, bytes that are not an
image 415, a corrupt or truncated image 400.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, File, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse, Response
from PIL import Image
from pydantic import BaseModel
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dfdetect.conventions import VERSION as __version__
from dfdetect.data.images import DEFAULT_MAX_PIXELS, VIDEO_EXTENSIONS, load_rgb
from dfdetect.errors import ImageLoadError, ImageTooLargeError, UnsupportedImageError
from dfdetect.faces import DEFAULT_DETECTOR, DEFAULT_MARGIN
from dfdetect.photos import score_framed
from dfdetect.runtime import BasePredictor

logger = logging.getLogger(__name__)

DEFAULT_MAX_UPLOAD_BYTES = 10 * 1024 * 1024
DEFAULT_MAX_FILES = 16


def is_video_upload(upload: UploadFile) -> bool:
    """A video by its declared type or its file name's extension."""
    name = (upload.filename or "").lower()
    return (upload.content_type or "").startswith("video/") or Path(name).suffix in VIDEO_EXTENSIONS


class FrameResult(BaseModel):
    frame: int
    seconds: float
    p_fake: float | None
    noise: float | None = None
    """The frame's face's estimated noise at the network's input size, grey levels."""


class PredictionResult(BaseModel):
    filename: str
    label: str
    p_fake: float
    p_real: float
    kind: str = "image"
    frames_read: int | None = None
    faces_found: int | None = None
    face: int | None = None
    """Images cut to their faces (--crop-face): the deciding (most fake) face, largest first from 0."""
    noise: float | None = None
    """Estimated noise at the network's input size, grey levels: images, of the deciding face (or image); videos,
    the median over the scored frames' faces."""
    caution: str | None = None
    """Why the score deserves less trust (a noisy or a small input), or null."""
    caution_codes: list[str] = []
    """The caution's reasons as codes a program can test: "small", "noisy" (empty without a caution)."""
    frames: list[FrameResult] | None = None


SCORED_FIELDS = ("label", "p_fake", "p_real", "noise", "caution", "caution_codes")
"""The fields an image's result takes from its `Prediction` (BasePredictor.prediction)."""


class PredictResponse(BaseModel):
    model: str | None
    threshold: float
    """Labels: real when p_real >= threshold."""
    threshold_policy: str
    """How the threshold was chosen: a policy `dfdetect calibrate` stored (eer, cost:2, ...), "0.5" or "given"."""
    calibrated: bool
    results: list[PredictionResult]


class ErrorResponse(BaseModel):
    error: str
    detail: str


class RequestTooLarge(Exception):
    """The request body passed the upload limit while it was being read."""


class ImageRejected(Exception):
    """An upload answered with a 4xx: status, short error, detail naming the file."""

    def __init__(self, status: int, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.kind, self.detail = status, kind, detail


def error_body(status: int, error: str, detail: str) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": error, "detail": detail})


class BodySizeLimit:
    """Answer 413 as soon as a request body is known (Content-Length) or seen (streamed) to exceed the limit."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = error_body(413, "request too large", f"the upload limit is {self.max_bytes:,} bytes")
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await too_large(scope, receive, send)
            return
        received, exceeded, answered = 0, False, False

        async def counted_receive() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    exceeded = True
                    raise RequestTooLarge  # stops the app reading; FastAPI may turn it into a 400, replaced below
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal answered
            if not exceeded:
                await send(message)
            elif not answered:
                answered = True
                await too_large(scope, receive, send)

        with contextlib.suppress(RequestTooLarge):
            await self.app(scope, counted_receive, guarded_send)
        if exceeded and not answered:
            await too_large(scope, receive, send)


def status_of(error: ImageLoadError) -> tuple[int, str]:
    if isinstance(error, ImageTooLargeError):
        return 413, "image too large"
    if isinstance(error, UnsupportedImageError):
        return 415, "not a supported image"
    return 400, "corrupt image"


def create_app(
    predictor: BasePredictor,
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_files: int = DEFAULT_MAX_FILES,
    max_video_bytes: int = 0,
    video_frames: int = 32,
    video_seconds: float = 30.0,
    crop_face: str = "auto",
    face_detector: str = DEFAULT_DETECTOR,
    face_margin: float = DEFAULT_MARGIN,
) -> FastAPI:
    """The HTTP app; the predictor is loaded once by the caller and shared by every request.

    Images are framed as `dfdetect predict --crop-face` frames them (`crop_face`; default auto: a photo that
    shows much more than a face is cut to its faces, the most fake deciding; a face crop is scored as it is).

    Videos (mp4, mov, avi, webm, mkv) are accepted when `max_video_bytes` > 0: `video_frames` frames, and at most
    `video_seconds` of decoding, so that one upload cannot hold the server."""
    app = FastAPI(
        title="dfdetect",
        version=__version__,
        description="Deepfake face detector. Labels: 0 = Fake, 1 = Real; p_real = P(Real).",
    )
    app.add_middleware(BodySizeLimit, max_bytes=max(max_upload_bytes, max_video_bytes))
    can_explain = predictor.supports_explain
    errors: dict[int | str, dict[str, Any]] = {
        code: {"model": ErrorResponse, "description": text}
        for code, text in (
            (400, "corrupt image or video, or wrong number of files"),
            (413, "upload, image or video too large, or too many files"),
            (415, "not a supported image"),
            (422, "a video in which no face was found"),
        )
    }

    def decode(upload: UploadFile, data: bytes) -> Image.Image:
        name = upload.filename or "upload"
        try:
            return load_rgb(data, max_pixels=max_pixels, name=name)
        except ImageLoadError as error:
            status, kind = status_of(error)
            raise ImageRejected(status, kind, str(error)) from None

    @app.exception_handler(ImageRejected)
    async def rejected(_request: Any, error: ImageRejected) -> JSONResponse:
        return error_body(error.status, error.kind, error.detail)

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/model")
    def model_info() -> dict[str, Any]:
        return {
            **predictor.describe(),
            "explain": can_explain,
            "max_upload_bytes": max_upload_bytes,
            "max_pixels": max_pixels,
            "max_files": max_files,
            "max_video_bytes": max_video_bytes,
        }

    @app.post("/v1/predict", response_model=PredictResponse, responses=errors)
    def predict(
        files: Annotated[list[UploadFile], File(description="one or more images, or videos")],
    ) -> PredictResponse:
        if len(files) > max_files:
            raise ImageRejected(413, "too many files", f"at most {max_files} files per request, got {len(files)}")
        uploads = [(upload, upload.file.read()) for upload in files]
        videos = {index for index, (upload, _) in enumerate(uploads) if is_video_upload(upload)}
        if videos and not max_video_bytes:
            raise ImageRejected(415, "videos not accepted", "this server scores images only (--max-video-mb 0)")
        for index, (upload, data) in enumerate(uploads):
            video = index in videos
            limit = max_video_bytes if video else max_upload_bytes
            if len(data) > limit:
                kind = "video too large" if video else "request too large"
                detail = (
                    f"{upload.filename}: {len(data):,} bytes; the {'video' if video else 'upload'} limit is {limit:,}"
                )
                raise ImageRejected(413, kind, detail)
        images = [(index, decode(upload, data)) for index, (upload, data) in enumerate(uploads) if index not in videos]
        results: dict[int, PredictionResult] = {}
        if images:
            framing = (crop_face, face_detector, face_margin)
            for (index, _), framed in zip(
                images, score_framed(predictor, [i for _, i in images], *framing), strict=True
            ):
                row = predictor.prediction(
                    uploads[index][0].filename or "upload", framed.verdict, framed.decisive_noise, framed.decisive_side
                )
                scored = {key: value for key, value in row.to_dict().items() if key in SCORED_FIELDS}
                results[index] = PredictionResult(
                    filename=row.path,
                    faces_found=None if crop_face == "never" else len(framed.faces),
                    face=framed.decisive if framed.cut else None,
                    **scored,
                )
        for index in sorted(videos):
            results[index] = score_video(*uploads[index])
        ordered = [results[index] for index in range(len(uploads))]
        return PredictResponse(
            model=predictor.model_label,
            threshold=predictor.threshold,
            threshold_policy=predictor.threshold_policy,
            calibrated=predictor.is_calibrated,
            results=ordered,
        )

    def score_video(upload: UploadFile, data: bytes) -> PredictionResult:
        from dfdetect.video import predict_video

        name = upload.filename or "upload"
        suffix = Path(name).suffix.lower() if Path(name).suffix.lower() in VIDEO_EXTENSIONS else ".mp4"
        with tempfile.TemporaryDirectory(prefix="dfdetect-upload-") as folder:
            path = Path(folder) / f"video{suffix}"
            path.write_bytes(data)
            video = predict_video(
                path,
                predictor.predict_images,
                predictor.label_of,
                frames=video_frames,
                max_seconds=video_seconds,
                name=name,
                noise=predictor.input_noise,
                cautions_of=predictor.cautions_of,
            )
        if video.p_fake is None:
            status, kind = (422, "no face found") if video.frames_read else (400, "corrupt video")
            raise ImageRejected(status, kind, video.error or name)
        return PredictionResult(
            filename=name,
            label=video.label or "",
            p_fake=video.p_fake,
            p_real=1 - video.p_fake,
            kind="video",
            frames_read=video.frames_read,
            faces_found=video.faces_found,
            noise=video.noise,
            caution=video.caution,
            caution_codes=video.caution_codes,
            frames=[
                FrameResult(frame=f.frame, seconds=f.seconds, p_fake=f.p_fake, noise=f.noise) for f in video.frames
            ],
        )

    if can_explain:

        @app.post(
            "/v1/explain",
            responses={**errors, 200: {"content": {"image/png": {}}, "description": "heatmap"}},
            response_class=Response,
        )
        def explain(files: Annotated[list[UploadFile], File(description="exactly one image")]) -> Response:
            from dfdetect.explain import gradcam_heatmaps, overlay

            if len(files) != 1:
                raise ImageRejected(400, "one image expected", f"/v1/explain takes one file, got {len(files)}")
            image = decode(files[0], files[0].file.read())
            heatmaps, p_real = gradcam_heatmaps(predictor, [image])  # type: ignore[arg-type]
            buffer = io.BytesIO()
            overlay(image, heatmaps[0]).save(buffer, format="PNG")
            headers = {"X-Label": predictor.label_of(float(p_real[0])), "X-P-Real": f"{float(p_real[0]):.6f}"}
            return Response(buffer.getvalue(), media_type="image/png", headers=headers)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> HTMLResponse:
        return HTMLResponse(resources.files("dfdetect.serving").joinpath("static/index.html").read_text("utf-8"))

    return app
