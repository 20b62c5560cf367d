"""Two photos are one picture when one is an edit of the other (a crop, a turn, a mirror, a
caption bar, a border, a low-quality re-save), not when they are two shots of one scene: the
two views of scikit-image's stereo pair, a pHash and an embedding apart like an edit, are told
apart by their aligned pixels. Verdicts are kept by the pair's bytes and never computed again."""

from __future__ import annotations

import io

import pytest
import skimage.data
from PIL import Image, ImageDraw, ImageOps
from sqlalchemy import create_engine

from busque.db.migrate import upgrade
from busque.index.checked_pairs import PairChecker
from busque.media import same_picture
from busque.media.pair_checks import PairChecks

MIN = 0.85  # busque.config.IndexSettings.min_pixel_agreement


def jpeg(image: Image.Image, quality: int = 90) -> bytes:
    out = io.BytesIO()
    image.convert("RGB").save(out, "JPEG", quality=quality)
    return out.getvalue()


@pytest.fixture(scope="module")
def left() -> Image.Image:
    return Image.fromarray(skimage.data.stereo_motorcycle()[0])


@pytest.fixture(scope="module")
def right() -> Image.Image:
    return Image.fromarray(skimage.data.stereo_motorcycle()[1])


def caption(image: Image.Image) -> Image.Image:
    out = Image.new("RGB", (image.width, image.height + 60), (20, 20, 20))
    out.paste(image, (0, 0))
    ImageDraw.Draw(out).text((10, image.height + 20), "Holidays 2019", fill="white")
    return out


EDITS = {
    "quarter turn": lambda im: im.transpose(Image.Transpose.ROTATE_90),
    "mirror": ImageOps.mirror,
    "30% crop": lambda im: im.crop((im.width // 7, im.height // 7, im.width * 6 // 7, im.height)),
    "caption": caption,
    "border": lambda im: ImageOps.expand(im, border=40, fill="white"),
    "half size, quality 20": lambda im: Image.open(
        io.BytesIO(jpeg(im.resize((im.width // 2, im.height // 2)), 20))
    ),
    "greyscale": ImageOps.grayscale,
}


@pytest.mark.parametrize("edit", EDITS)
def test_an_edit_is_the_same_picture(left, edit):
    original = same_picture.picture(jpeg(left))
    edited = same_picture.picture(jpeg(EDITS[edit](left)))
    assert same_picture.agreement(edited, original) >= 0.95
    assert same_picture.agreement(original, edited) >= 0.95


def test_two_shots_of_one_scene_are_not(left, right):
    views = same_picture.picture(jpeg(left)), same_picture.picture(jpeg(right))
    assert same_picture.agreement(*views) < 0.7
    # ... nor are their edits: a crop of one view against the other turned
    cropped = same_picture.picture(jpeg(EDITS["30% crop"](left)))
    turned = same_picture.picture(jpeg(EDITS["quarter turn"](right)))
    assert same_picture.agreement(cropped, turned) < 0.7


def test_unrelated_photos_do_not_align_and_plain_ones_get_no_verdict(left):
    cat = same_picture.picture(jpeg(Image.fromarray(skimage.data.chelsea())))
    assert same_picture.agreement(cat, same_picture.picture(jpeg(left))) == 0.0
    flat = same_picture.picture(jpeg(Image.new("RGB", (400, 300), (90, 120, 200))))
    assert flat.too_plain
    assert same_picture.agreement(flat, cat) is None
    # The motion-blurred clock has too few corners to align with its own copy: no verdict.
    clock = Image.fromarray(skimage.data.clock()).convert("RGB")
    copy = same_picture.picture(jpeg(clock.resize((clock.width // 2, clock.height // 2)), 30))
    assert same_picture.agreement(same_picture.picture(jpeg(clock)), copy) is None


def test_verdicts_are_kept_by_the_bytes_and_never_computed_again(tmp_path, left, right):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    upgrade(url)
    engine = create_engine(url)
    store = PairChecks(engine)
    objects = {
        "left": jpeg(left),
        "crop": jpeg(EDITS["30% crop"](left)),
        "right": jpeg(right),
        "broken": b"not an image",
    }
    items = {1: ("a" * 64, "left"), 2: ("b" * 64, "crop"), 3: ("c" * 64, "right")}
    items[4] = ("d" * 64, "broken")
    reads = []

    def read(key):
        reads.append(key)
        return objects[key]

    def sources(ids):
        return {i: items[i] for i in ids if i in items}

    pairs = {(1, 2): [3, 0.9, None], (1, 3): [4, 0.9, None], (2, 3): [6, 0.85, None]}
    pairs[(3, 4)] = [2, None, None]  # an unreadable picture: the pair stands on its pHash
    checker = PairChecker(sources, read, MIN, store)
    assert set(checker(pairs)) == {(1, 2), (3, 4)}
    assert sorted(reads) == ["broken", "crop", "left", "right"]  # each read once
    stored = store.get([("a" * 64, "b" * 64), ("a" * 64, "c" * 64)], same_picture.METHOD)
    assert stored[("a" * 64, "b" * 64)] >= MIN > stored[("a" * 64, "c" * 64)]
    assert ("c" * 64, "d" * 64) not in store.get([("c" * 64, "d" * 64)], same_picture.METHOD)

    # Another replica (or a restart) with the same bytes: the stored verdicts, nothing read.
    reads.clear()
    again = PairChecker(sources, lambda key: read(key) if key == "broken" else 1 / 0, MIN, store)
    assert set(again({p: e for p, e in pairs.items() if p != (3, 4)})) == {(1, 2)}
    assert reads == []
    store.put({("a" * 64, "b" * 64): 0.1}, same_picture.METHOD)  # a second writer: no error

    # The last pair to check has the bytes of one checked before it: all verdicts still stored.
    items[5], items[6] = ("e" * 64, "left"), ("f" * 64, "crop")
    items[7] = ("f" * 64, "crop")  # the same bytes as 6
    third = PairChecker(sources, read, MIN, store)
    assert set(third({(5, 6): [3, 0.9, None], (5, 7): [3, 0.9, None]})) == {(5, 6), (5, 7)}
    assert store.get([("e" * 64, "f" * 64)], same_picture.METHOD)[("e" * 64, "f" * 64)] >= MIN
