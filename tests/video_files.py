"""Real short videos for the video tests, encoded with PyAV (whose wheel ships ffmpeg).

Frames come from real content: a scikit-image photo seen through a window that pans and zooms
over time, so consecutive frames differ the way camera footage does. Encoders are picked from
what the av wheel has (libx264, mpeg4, libvpx-vp9, ...), preset for speed: the machine is small.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

# Container -> encoders to try, best first (the first one the av wheel has is used).
CODECS = {
    "mp4": ["libx264", "mpeg4"],
    "mov": ["libx264", "mpeg4"],
    "m4v": ["libx264", "mpeg4"],
    "mkv": ["libx264", "mpeg4"],
    "avi": ["mpeg4", "libx264"],
    "webm": ["libvpx-vp9", "libvpx"],
}
# Fast settings: these are test fixtures, not archival encodes.
ENCODER_OPTIONS = {
    "libx264": {"preset": "ultrafast"},
    "libvpx-vp9": {"deadline": "realtime", "cpu-used": "8"},
    "libvpx": {"deadline": "realtime", "cpu-used": "8"},
}


def pick_codec(kind: str) -> str:
    for name in CODECS[kind]:
        if name in av.codecs_available:
            return name
    raise RuntimeError(f"the av wheel has no encoder for {kind}: tried {CODECS[kind]}")


def make_video(
    path: str | Path,
    *,
    seconds: float = 2.0,
    fps: int = 10,
    size: tuple[int, int] = (160, 120),
    kind: str | None = None,
    pattern: str = "pan",
    photo: str = "astronaut",
    seed: int = 0,
    gop: int | None = None,
    bit_rate: int | None = None,
    rotation: int = 0,
) -> Path:
    """Encode `seconds` of video; kind defaults to the path's extension.

    pattern: "pan" (a photo panned and zoomed over time), "gradient" (a moving colour gradient)
    or "noise" (seeded random frames: content unlike anything else). gop is the keyframe
    interval in frames (the encoder's default when None). rotation (counter-clockwise, 0, 90,
    180 or 270) stores the frames turned the other way with a display matrix that turns them
    back, as phones do for portrait videos: `size` is the displayed size.
    """
    path = Path(path)
    kind = kind or path.suffix.lstrip(".")
    n = max(1, round(seconds * fps))
    frames = _frames(pattern, n, size, photo=photo, seed=seed)
    if rotation:
        frames = (Image.fromarray(np.asarray(f)).rotate(-rotation, expand=True) for f in frames)
    return encode_frames(
        path, frames, fps=fps, kind=kind, gop=gop, bit_rate=bit_rate, rotation=rotation
    )


def encode_frames(
    path: Path,
    frames,
    *,
    fps: float,
    kind: str,
    size: tuple[int, int] | None = None,
    gop: int | None = None,
    bit_rate: int | None = None,
    rotation: int = 0,
) -> Path:
    """Encode RGB uint8 arrays (h, w, 3) or PIL images, resized to `size` when given; a
    rotation is written as the stream's display matrix."""
    codec = pick_codec(kind)
    with av.open(str(path), "w", format=_muxer(kind)) as container:
        stream = container.add_stream(
            codec, rate=Fraction(fps).limit_denominator(1001), options=ENCODER_OPTIONS.get(codec)
        )
        stream.pix_fmt = "yuv420p"
        if gop:
            stream.codec_context.gop_size = gop
        if bit_rate:
            stream.codec_context.bit_rate = bit_rate
        for i, pixels in enumerate(frames):
            img = pixels if isinstance(pixels, Image.Image) else Image.fromarray(pixels)
            if size:
                img = img.resize(size, Image.Resampling.BILINEAR)
            if i == 0:
                stream.width, stream.height = img.size
                if rotation:
                    stream.set_display_rotation(rotation)
            frame = av.VideoFrame.from_image(img.convert("RGB"))
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))  # flush the encoder's delayed frames
    return path


def transcode(
    src: str | Path,
    dst: str | Path,
    *,
    size: tuple[int, int] | None = None,
    bit_rate: int | None = None,
    gop: int | None = None,
) -> Path:
    """Decode src and encode it again (codec from dst's extension): a re-encoded copy."""
    dst = Path(dst)
    with av.open(str(src)) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate or 25)
        images = [frame.to_image() for frame in container.decode(stream)]
    return encode_frames(
        dst,
        images,
        fps=fps,
        kind=dst.suffix.lstrip("."),
        size=size,
        gop=gop,
        bit_rate=bit_rate,
    )


def make_audio(path: str | Path, *, seconds: float = 1.0, rate: int = 16000) -> Path:
    """An audio-only file (a 440 Hz tone; AAC in an mp4/m4a container): no video stream."""
    path = Path(path)
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("aac", rate=rate)
        stream.layout = "mono"
        t = np.arange(round(seconds * rate)) / rate
        tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
        chunk = 1024  # the AAC frame size
        for start in range(0, len(tone), chunk):
            frame = av.AudioFrame.from_ndarray(
                tone[None, start : start + chunk].copy(), format="fltp", layout="mono"
            )
            frame.sample_rate = rate
            frame.pts = start
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def corrupt_video(src: str | Path, dst: str | Path, *, keep: float = 0.5) -> Path:
    """A truncated copy: the first `keep` share of the bytes (an interrupted copy or upload)."""
    data = Path(src).read_bytes()
    dst = Path(dst)
    dst.write_bytes(data[: int(len(data) * keep)])
    return dst


def _muxer(kind: str) -> str:
    return {"mkv": "matroska", "m4v": "mp4"}.get(kind, kind)


def _frames(pattern: str, n: int, size: tuple[int, int], *, photo: str, seed: int):
    width, height = size
    if pattern == "pan":
        yield from _pan(_photo(photo), n, size)
    elif pattern == "gradient":
        y, x = np.mgrid[0:height, 0:width].astype(np.float32)
        for i in range(n):
            phase = 2 * np.pi * i / max(n, 1)
            r = 127 + 127 * np.sin(x / width * 2 * np.pi + phase)
            g = 127 + 127 * np.sin(y / height * 2 * np.pi - phase)
            b = 255 * (x + y) / (width + height)
            yield np.stack([r, g, b], axis=-1).astype(np.uint8)
    elif pattern == "noise":
        rng = np.random.default_rng(seed)
        for _ in range(n):
            # Blocky noise: pixel noise would be smoothed into grey by the encoder and the hash.
            blocks = rng.integers(0, 256, (height // 8 + 1, width // 8 + 1, 3), dtype=np.uint8)
            yield np.kron(blocks, np.ones((8, 8, 1), np.uint8))[:height, :width]
    else:
        raise ValueError(f"unknown pattern {pattern!r}: use 'pan', 'gradient' or 'noise'")


def _photo(name: str) -> Image.Image:
    import skimage.data

    pixels = getattr(skimage.data, name)()
    img = Image.fromarray(pixels)
    return img.convert("RGB")


def _pan(img: Image.Image, n: int, size: tuple[int, int]):
    """A window of `size`'s aspect ratio that zooms from 90% to 45% of the photo while moving
    from its top-left towards its bottom-right, resized to `size`."""
    width, height = size
    for i in range(n):
        t = i / max(n - 1, 1)
        scale = 0.9 - 0.45 * t
        w = img.width * scale
        h = min(img.height * scale, w * height / width)
        w = h * width / height
        left = (img.width - w) * t
        top = (img.height - h) * t
        box = (left, top, left + w, top + h)
        yield img.resize(size, Image.Resampling.BILINEAR, box=box)
