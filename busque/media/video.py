"""Video metadata and keyframe perceptual hashes with PyAV (whose wheel ships ffmpeg).

For the backfill of a legacy photo/video library: probe_video says what a file is (and refuses
junk), keyframe_phashes hashes a few frames spread over the video with busque's 64-bit pHash
(imagehash's format, so a frame can be compared with photo hashes too), and
video_near_duplicates scores two videos by those hashes.

Sampling seeks instead of decoding the whole video: each seek lands on the keyframe before the
target time, then at most MAX_FORWARD frames are decoded towards it. Every error av raises on a
corrupt, truncated or non-video file becomes InvalidVideo (422), like InvalidImage for images.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np
from PIL import Image

from busque.media.decode import MediaError
from busque.media.phash import IMG_SIZE, hashes_from_pixels

VIDEO_EXTENSIONS = {".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v"}

# Decode at most this many frames towards each target time. Seeks land on the keyframe before
# it, and keyframes can be 10 s apart (x264's default), so decoding all the way could cost a
# whole GOP per sample; past the cap the frame reached stands in for the target. 64 covers the
# 1-2 s keyframe intervals of phones and cameras at 30 fps.
MAX_FORWARD = 64
# Frames are shrunk (by swscale, on the YUV planes) to at most this side before the PIL
# conversion: to_image() of a 4K frame would convert 8 MP to RGB for a 32x32 hash.
HASH_SOURCE_SIDE = 256

# What av (and the OS under it) raises on bad input. av's own errors all derive FFmpegError;
# some also derive ValueError/OSError, and decoders and demuxers may raise those plainly.
AV_ERRORS = (av.error.FFmpegError, OSError, ValueError, EOFError, IndexError)

# ffmpeg demuxers for still images (a JPEG renamed .mp4 opens as a one-frame "video").
_STILL_IMAGE_DEMUXERS = ("image2", "_pipe")

# Display rotation (counter-clockwise, as av reports it) -> the PIL transpose that applies it.
_ROTATIONS = {
    90: Image.Transpose.ROTATE_90,
    180: Image.Transpose.ROTATE_180,
    270: Image.Transpose.ROTATE_270,
}


class InvalidVideo(MediaError):
    """Empty, corrupt, truncated or non-video file, or one with no video stream."""

    code = "invalid_video"


@dataclass
class VideoInfo:
    duration_s: float
    fps: float
    width: int  # as displayed: after the rotation of the display matrix (phone videos)
    height: int
    codec: str  # ffmpeg's decoder name: h264, hevc, mpeg4, vp9, ...
    frames: int | None  # from the container's header; None where it does not say (mkv, webm)
    format: str  # ffmpeg's demuxer, narrowed by the extension: mp4, mov, matroska, webm, avi
    rotation: int = 0  # degrees counter-clockwise the stored frames are turned for display


def probe_video(path: str | Path) -> VideoInfo:
    """Metadata of the first video stream; the first frame is decoded to prove it decodes."""
    with _open(path) as container:
        try:
            stream = _video_stream(container, path)
            info = VideoInfo(
                duration_s=_duration(container, stream),
                fps=_fps(stream),
                width=stream.codec_context.width,
                height=stream.codec_context.height,
                codec=stream.codec_context.name,
                frames=stream.frames or None,
                format=_format_name(container, path),
            )
            container.seek(0)
            first = next(_decode(container, stream), None)
            if first is None:
                raise InvalidVideo(f"{Path(path).name}: no video frame could be decoded")
            info.rotation = _rotation(first)
            if info.rotation in (90, 270):
                info.width, info.height = info.height, info.width
        except MediaError:
            raise
        except AV_ERRORS as exc:
            raise InvalidVideo(
                f"{Path(path).name}: corrupt or truncated video: {_why(exc)}"
            ) from None
    if info.width <= 0 or info.height <= 0:
        raise InvalidVideo(f"{Path(path).name}: invalid video size {info.width}x{info.height}")
    return info


def keyframe_phashes(path: str | Path, max_frames: int = 8) -> list[tuple[float, str]]:
    """(timestamp_s, 16-hex pHash) of up to max_frames frames spread evenly over the video.

    Targets are the centres of max_frames equal slices of the duration (the first and last
    frames are often black or a title card). Timestamps are the decoded frames' own, from the
    stream's start; where several targets land on the same frame (a short video, sparse
    keyframes past MAX_FORWARD), that frame is hashed once.
    """
    samples = _sampled(path, max_frames, _small_grey)
    hashes = hashes_from_pixels(np.stack([pixels for _, pixels in samples]))
    return [(round(t, 3), h) for (t, _), h in zip(samples, hashes, strict=True)]


def sample_frames(
    path: str | Path, max_frames: int = 4, max_side: int = 1600
) -> list[tuple[float, Image.Image]]:
    """(timestamp_s, RGB frame as displayed, at most max_side) of up to max_frames frames spread
    evenly over the video, chosen as keyframe_phashes chooses its frames (faces are looked for
    in these)."""
    samples = _sampled(path, max_frames, lambda frame: _displayed(frame, max_side))
    return [(round(t, 3), image) for t, image in samples]


def _sampled(path: str | Path, max_frames: int, convert) -> list[tuple[float, Any]]:
    """_sample_frames on the file, with av's errors as InvalidVideo; at least one frame."""
    if max_frames < 1:
        raise ValueError("max_frames must be >= 1")
    with _open(path) as container:
        try:
            stream = _video_stream(container, path)
            samples = _sample_frames(container, stream, max_frames, convert)
        except MediaError:
            raise
        except AV_ERRORS as exc:
            raise InvalidVideo(
                f"{Path(path).name}: corrupt or truncated video: {_why(exc)}"
            ) from None
    if not samples:
        raise InvalidVideo(f"{Path(path).name}: no video frame could be decoded")
    return samples


def poster_frame(path: str | Path) -> Image.Image:
    """An RGB frame from the middle of the video (as displayed): its thumbnail and the image its
    embedding comes from."""
    with _open(path) as container:
        try:
            stream = _video_stream(container, path)
            middle = _duration(container, stream) / 2
            if stream.time_base and middle > 0:
                container.seek(int(middle / stream.time_base), stream=stream)
            frame = next(_decode(container, stream), None)
            if frame is None:
                container.seek(0)
                frame = next(_decode(container, stream), None)
            if frame is None:
                raise InvalidVideo(f"{Path(path).name}: no video frame could be decoded")
            image = frame.to_image().convert("RGB")
            rotation = _rotation(frame)
        except MediaError:
            raise
        except AV_ERRORS as exc:
            raise InvalidVideo(
                f"{Path(path).name}: corrupt or truncated video: {_why(exc)}"
            ) from None
    return image.rotate(rotation, expand=True) if rotation else image


def video_near_duplicates(a: list[str], b: list[str], radius: int = 8) -> float:
    """Share (0..1) of a's hashes with a hash of b within `radius` Hamming bits.

    Not symmetric on purpose: a clip cut from b scores 1 as a, while b against the clip scores
    the share of b the clip covers. Order and timing are ignored, so a re-encode with other
    keyframes, a trimmed copy or a re-cut still scores high.
    """
    if not a:
        return 0.0
    others = [int(h, 16) for h in b]
    hits = sum(any((int(h, 16) ^ o).bit_count() <= radius for o in others) for h in a)
    return hits / len(a)


def _open(path: str | Path):
    path = Path(path)
    if not path.is_file():  # a missing file is the caller's problem, not an invalid video
        raise FileNotFoundError(f"no such file: {path}")
    if path.stat().st_size == 0:
        raise InvalidVideo(f"{path.name}: empty file: 0 bytes")
    try:
        return av.open(str(path), metadata_errors="replace")
    except AV_ERRORS as exc:
        raise InvalidVideo(f"{path.name}: not a readable video: {_why(exc)}") from None


def _why(exc: Exception) -> str:
    """av's message without the file's path (an API error should not show server paths)."""
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__


def _video_stream(container, path: str | Path):
    name = container.format.name
    if name == _STILL_IMAGE_DEMUXERS[0] or name.endswith(_STILL_IMAGE_DEMUXERS[1]):
        raise InvalidVideo(f"{Path(path).name}: a still image ({name}), not a video")
    if not container.streams.video:
        kinds = sorted({s.type for s in container.streams}) or ["none"]
        raise InvalidVideo(f"{Path(path).name}: no video stream (streams: {', '.join(kinds)})")
    return container.streams.video[0]


def _duration(container, stream) -> float:
    """Stream duration, else the container's, else frames / fps, else the last packet's end."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration and container.duration > 0:
        return container.duration / av.time_base
    fps = _fps(stream)
    if stream.frames and fps:
        return stream.frames / fps
    # No header says: demux (without decoding) to the last packet, e.g. a raw .h264 stream.
    end = 0.0
    start = stream.start_time or 0
    for packet in container.demux(stream):
        if packet.pts is not None and packet.time_base:
            end = max(end, float((packet.pts - start + (packet.duration or 0)) * packet.time_base))
    return end


def _fps(stream) -> float:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return float(rate) if rate else 0.0


def _format_name(container, path: str | Path) -> str:
    """ffmpeg names demuxers by family ("mov,mp4,m4a,3gp,3g2,mj2"): pick the extension's one."""
    names = container.format.name.split(",")
    ext = Path(path).suffix.lower().lstrip(".")
    ext = {"m4v": "mp4", "mkv": "matroska"}.get(ext, ext)
    return ext if ext in names else names[0]


def _decode(container, stream) -> Iterator:
    """Decoded frames of one stream from the demuxer's current position."""
    return container.decode(stream)


def _sample_frames(container, stream, n: int, convert) -> list[tuple[float, Any]]:
    """Decode the frames nearest n evenly spaced targets: (time_s, convert(frame)).

    Decoding never goes backwards: a target is reached by seeking only when a keyframe lies
    between the current position and it (else seeking would land behind us), and by decoding
    on otherwise, at most MAX_FORWARD frames per target. So a video with dense keyframes gives
    frames at the targets, one with a single keyframe degrades to frames MAX_FORWARD apart, and
    the work is at most n * MAX_FORWARD frames whatever the length.
    """
    duration = _duration(container, stream)
    fps = _fps(stream) or 25.0
    time_base = stream.time_base
    start = stream.start_time or 0
    targets = [duration * (i + 0.5) / n for i in range(n)] if duration > 0 else [0.0]
    keys = _keyframes_before(container, stream, targets, start)
    container.seek(0)  # _duration and _keyframes_before moved the demuxer
    frames = _decode(container, stream)
    samples: list[tuple[float, np.ndarray]] = []
    current = None  # the last frame decoded, and its time
    current_t = -math.inf
    for target, key_t in zip(targets, keys, strict=True):
        if key_t is not None and key_t > current_t and target > 0:
            container.seek(start + int(target / time_base), stream=stream, backward=True)
            frames = _decode(container, stream)
            current = None
        budget = MAX_FORWARD
        # Decode towards the target; half a frame early counts as there.
        while budget > 0 and (current is None or current_t < target - 0.5 / fps):
            frame = next(frames, None)
            if frame is None:  # the end (of a truncated file, perhaps): keep the last frame
                break
            budget -= 1
            current = frame
            current_t = _frame_time(frame, start, time_base, fallback=current_t + 1 / fps)
        if current is None or (samples and current_t <= samples[-1][0]):
            continue  # nothing decoded, or several targets landed on one frame
        samples.append((current_t, convert(current)))
    return samples


def _keyframes_before(container, stream, targets: list[float], start: int) -> list:
    """Time of the keyframe a seek to each target lands on, found by reading one packet after
    each seek (no decoding); None for targets where the file cannot seek."""
    keys: list[float | None] = []
    for target in targets:
        try:
            container.seek(start + int(target / stream.time_base), stream=stream, backward=True)
            packet = next(container.demux(stream), None)
        except AV_ERRORS:
            keys.append(None)
            continue
        pts = None if packet is None else packet.pts if packet.pts is not None else packet.dts
        keys.append(None if pts is None else float((pts - start) * stream.time_base))
    return keys


def _frame_time(frame, start: int, time_base, *, fallback: float) -> float:
    if frame.pts is None or not time_base:
        return max(fallback, 0.0)
    return float((frame.pts - start) * time_base)


def _rotation(frame) -> int:
    """The display rotation in 0, 90, 180, 270 (0 with an av too old for frame.rotation)."""
    return round(getattr(frame, "rotation", 0) or 0) % 360


def _small_grey(frame) -> np.ndarray:
    """The 32x32 greyscale pixels busque's pHash hashes (as phash_bytes does for an image):
    RGB via PIL, turned as displayed (like EXIF orientation for photos), convert("L"), LANCZOS
    to 32x32; big frames are shrunk by swscale first."""
    img = _displayed(frame, HASH_SOURCE_SIDE)
    small = img.convert("L").resize((IMG_SIZE, IMG_SIZE), Image.Resampling.LANCZOS)
    return np.asarray(small)


def _displayed(frame, max_side: int) -> Image.Image:
    """The frame as an RGB PIL image turned as displayed, shrunk by swscale (on the YUV planes,
    before the RGB conversion) to at most max_side."""
    scale = max_side / max(frame.width, frame.height)
    if scale < 1:
        size = (max(1, round(frame.width * scale)), max(1, round(frame.height * scale)))
        img = frame.to_image(width=size[0], height=size[1], interpolation="AREA")
    else:
        img = frame.to_image()
    if _rotation(frame) in _ROTATIONS:
        img = img.transpose(_ROTATIONS[_rotation(frame)])
    return img.convert("RGB")
