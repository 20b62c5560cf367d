"""The dlib face backend with its real weights on real photos (no Ray).

Photos: scikit-image's astronaut (Eileen Collins, one face) and matplotlib's Grace Hopper (one
face). HOG also scores a patch of the astronaut's suit (the flag, near (126, 335)) just above
zero (0.03-0.10) once the photo is JPEG-compressed, enlarged or pasted on a canvas, while the
real faces here score above 1; the shared analyzer drops detections below 0.2 so the counts
below are about faces, and one test checks the defaults on the plain photo.
"""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
from PIL import Image

from busque.media.decode import MediaError
from busque.models.faces import create_face_analyzer, unavailable_reason

REASON = unavailable_reason("dlib")
if REASON:
    pytest.skip(REASON, allow_module_level=True)

ASTRONAUT_BOX = (179, 83, 88, 88)  # dlib HOG, upsample 0, on the 512x512 photo
MIN_SCORE = 0.2
SAME_PERSON = 0.6


def iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    w = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    h = max(0, min(ay + ah, by + bh) - max(ay, by))
    return w * h / (aw * ah + bw * bh - w * h)


def scaled(box, sx, sy=None, dx=0, dy=0):
    sy = sx if sy is None else sy
    x, y, w, h = box
    return (x * sx + dx, y * sy + dy, w * sx, h * sy)


def jpeg(img: Image.Image, **options) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", **options)
    return buf.getvalue()


def distance(a, b) -> float:
    return float(np.linalg.norm(a.embedding - b.embedding))


@pytest.fixture(scope="module")
def analyzer():
    return create_face_analyzer("dlib", min_score=MIN_SCORE)


@pytest.fixture(scope="module")
def astronaut() -> Image.Image:
    from skimage import data

    return Image.fromarray(data.astronaut())


@pytest.fixture(scope="module")
def hopper() -> bytes:
    import matplotlib

    path = os.path.join(matplotlib.get_data_path(), "sample_data", "grace_hopper.jpg")
    with open(path, "rb") as f:
        return f.read()


@pytest.fixture(scope="module")
def astronaut_face(analyzer, astronaut):
    (faces,) = analyzer.analyze([astronaut])
    assert len(faces) == 1
    return faces[0]


def test_astronaut_with_defaults(astronaut):
    (faces,) = create_face_analyzer("dlib").analyze([astronaut])
    assert len(faces) == 1
    face = faces[0]
    assert iou(face.box, ASTRONAUT_BOX) > 0.5
    assert face.score > 0
    assert face.embedding.dtype == np.float32 and face.embedding.shape == (128,)
    assert np.isfinite(face.embedding).all() and 0.5 < np.linalg.norm(face.embedding) < 2
    assert len(face.landmarks) == 5
    assert all(179 <= x < 179 + 88 and 83 <= y < 83 + 88 for x, y in face.landmarks)
    thumb = Image.open(io.BytesIO(face.thumbnail))
    assert thumb.format == "JPEG" and thumb.size == (150, 150) and thumb.mode == "RGB"


def test_two_people_on_one_canvas(analyzer, astronaut, hopper):
    grace = Image.open(io.BytesIO(hopper)).convert("RGB")
    canvas = Image.new("RGB", (512 + grace.width, 600), (120, 120, 120))
    canvas.paste(astronaut, (0, 0))
    canvas.paste(grace, (512, 0))
    (faces,) = analyzer.analyze([jpeg(canvas, quality=90)])
    assert len(faces) == 2
    left, right = sorted(faces, key=lambda f: f.box[0])
    assert iou(left.box, ASTRONAUT_BOX) > 0.5 and right.box[0] > 512
    assert distance(left, right) > SAME_PERSON


def test_same_face_resized_recompressed_and_mirrored(analyzer, hopper):
    grace = Image.open(io.BytesIO(hopper)).convert("RGB")
    small = grace.resize((round(grace.width * 0.6), round(grace.height * 0.6)), Image.LANCZOS)
    mirrored = grace.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    (ref,), (low,), (mirror,) = analyzer.analyze([hopper, jpeg(small, quality=40), mirrored])
    assert distance(ref, low) < SAME_PERSON
    assert distance(ref, mirror) < SAME_PERSON
    assert iou(low.box, scaled(ref.box, 0.6)) > 0.5
    x, y, w, h = ref.box
    assert iou(mirror.box, (grace.width - x - w, y, w, h)) > 0.5


@pytest.mark.parametrize("orientation", [6, 8])
def test_exif_rotated_jpeg(analyzer, astronaut, orientation):
    canvas = Image.new("RGB", (512, 700), (120, 120, 120))  # not square: a swap would show
    canvas.paste(astronaut, (0, 0))
    # Orientation 6 is shown rotated 90 degrees clockwise: store the pixels rotated the other way.
    exif = Image.Exif()
    exif[0x0112] = orientation
    stored = canvas.transpose(
        Image.Transpose.ROTATE_90 if orientation == 6 else Image.Transpose.ROTATE_270
    )
    (faces,) = analyzer.analyze([jpeg(stored, quality=95, exif=exif)])
    assert len(faces) == 1
    assert iou(faces[0].box, ASTRONAUT_BOX) > 0.7
    assert all(x < 512 and y < 700 for x, y in faces[0].landmarks)


def test_twelve_megapixel_photo(analyzer, astronaut, monkeypatch):
    canvas = Image.new("RGB", (4000, 3000), (120, 120, 120))
    canvas.paste(astronaut.resize((3000, 3000), Image.BICUBIC), (500, 0))
    seen = []
    detect = analyzer.detector.detect
    monkeypatch.setattr(
        analyzer.detector, "detect", lambda rgb: seen.append(rgb.shape) or detect(rgb)
    )
    (faces,) = analyzer.analyze([jpeg(canvas, quality=90)])
    assert len(faces) == 1
    assert iou(faces[0].box, scaled(ASTRONAUT_BOX, 3000 / 512, dx=500)) > 0.7
    assert seen == [(1200, 1600, 3)]
    thumb = Image.open(io.BytesIO(faces[0].thumbnail))
    assert thumb.size == (150, 150)


def test_modes_grey_cmyk_alpha(analyzer, astronaut):
    rgba = astronaut.convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize(astronaut.size).point(lambda v: 128 + v // 2))
    png = io.BytesIO()
    rgba.save(png, "PNG")
    inputs = [
        jpeg(astronaut.convert("L"), quality=95),
        jpeg(astronaut.convert("CMYK"), quality=95),
        png.getvalue(),
    ]
    for faces in analyzer.analyze(inputs):
        assert len(faces) == 1
        assert iou(faces[0].box, ASTRONAUT_BOX) > 0.7


def test_no_faces(analyzer):
    from skimage import data

    tiny = Image.new("RGB", (8, 8), (200, 150, 120))
    coffee = jpeg(Image.fromarray(data.coffee()), quality=90)
    assert analyzer.analyze([tiny, jpeg(tiny), coffee]) == [[], [], []]
    assert analyzer.analyze([]) == []


def test_corrupt_bytes_raise_media_error(analyzer, astronaut):
    with pytest.raises(MediaError):
        analyzer.analyze([b"not an image at all"])
    with pytest.raises(MediaError):
        analyzer.analyze([jpeg(astronaut)[:2000]])


def test_embeddings_batched_like_single(analyzer, astronaut, hopper, astronaut_face):
    faces = analyzer.analyze([hopper, astronaut])
    assert [len(f) for f in faces] == [1, 1]
    np.testing.assert_array_equal(faces[1][0].embedding, astronaut_face.embedding)


def test_concurrent_calls(analyzer, astronaut, astronaut_face):
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(analyzer.analyze, [[astronaut]] * 4))
    for (faces,) in results:
        np.testing.assert_array_equal(faces[0].embedding, astronaut_face.embedding)


def test_thumbnail_size_option(astronaut, astronaut_face):
    (faces,) = create_face_analyzer("dlib", thumbnail_size=96).analyze([astronaut])
    assert Image.open(io.BytesIO(faces[0].thumbnail)).size == (96, 96)
    # The network still gets its own 150 px chip: the same vector.
    np.testing.assert_array_equal(faces[0].embedding, astronaut_face.embedding)


def test_cnn_detector(astronaut, astronaut_face):
    (faces,) = create_face_analyzer("dlib", detector="cnn").analyze([astronaut])
    assert len(faces) == 1
    assert iou(faces[0].box, ASTRONAUT_BOX) > 0.5
    assert faces[0].score > 0
    assert distance(faces[0], astronaut_face) < 0.2


def test_unknown_detector():
    with pytest.raises(ValueError, match="unknown face detector"):
        create_face_analyzer("dlib", detector="yolo")


def test_a_videos_faces_come_from_sampled_frames_one_per_person(astronaut, tmp_path):
    """The astronaut drifting across a 640x480 video: the same face in every sampled frame is
    kept once (the best scored), with its frame's time and a box inside the frame."""
    from busque.config import FaceSettings
    from busque.faces.video import video_faces
    from busque.media.video import sample_frames
    from tests.video_files import encode_frames

    def frame(i: int) -> Image.Image:
        canvas = Image.new("RGB", (640, 480), (40, 40, 40))
        canvas.paste(astronaut.resize((400, 400)), (20 + 8 * i, 40))
        return canvas

    path = encode_frames(tmp_path / "walk.mp4", (frame(i) for i in range(20)), fps=10, kind="mp4")
    analyzer = create_face_analyzer("dlib", min_score=FaceSettings().min_score)  # the service's
    frames = sample_frames(path, max_frames=4, max_side=1600)
    times = [t for t, _ in frames]
    assert len(frames) == 4 and times == sorted(times) and frames[0][1].size == (640, 480)
    ((t, face),) = video_faces(frames, analyzer.analyze, same_distance=0.5)
    assert t in times and face.score >= FaceSettings().min_score
    x, y, w, h = face.box
    assert 0 <= x <= x + w <= 640 and 0 <= y <= y + h <= 480
    # every frame saw the face: the merge, not the detector, left one
    assert all(len(found) == 1 for found in analyzer.analyze([image for _, image in frames]))
    small = sample_frames(path, max_frames=2, max_side=320)
    assert len(small) == 2 and small[0][1].size == (320, 240)
