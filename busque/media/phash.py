"""64-bit DCT perceptual hash, in imagehash's format (the hex of `str(imagehash.phash(img))`).

Two modes:
- "exact": imagehash.phash's algorithm step for step (convert("L"), 32x32 LANCZOS, scipy DCT-II on
  both axes, top-left 8x8, > median), so the hex is bit for bit the same.
- "fast" (default): for JPEG, libjpeg decodes straight to greyscale at 1/2..1/8 scale (Pillow's
  draft mode) before the same 32x32 resize, and the DCT is one matmul with a precomputed matrix.
  On a 12 MP JPEG this skips most of the decoding work; the hash stays within a few bits.

Both hash the image as ingest sees it: EXIF orientation applied (imagehash itself ignores EXIF,
so the two differ only for photos with an orientation tag). Transparency is not composited:
like imagehash, convert("L") drops the alpha channel.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from busque.media.decode import (
    DECODE_ERRORS,
    DEFAULT_MAX_PIXELS,
    InvalidImage,
    exif_transpose,
    open_image,
)

HASH_SIZE = 8
IMG_SIZE = HASH_SIZE * 4  # imagehash's highfreq_factor=4
# Ask libjpeg for at least this many pixels a side (scale 1/8 from 1024 px up): 64 lost up to 12
# bits on fine textures against imagehash, 128 keeps them within 2 and costs ~0.5 ms on 1 MP.
DRAFT_SIZE = 128


def _dct_matrix(n: int, rows: int) -> np.ndarray:
    """The first `rows` rows of scipy.fftpack's unnormalised DCT-II matrix of size n."""
    k = np.arange(rows)[:, None]
    i = np.arange(n)[None, :]
    return 2.0 * np.cos(np.pi * k * (2 * i + 1) / (2 * n))


_D = _dct_matrix(IMG_SIZE, HASH_SIZE)
# dct(dct(x, axis=0), axis=1)[:8, :8] == D @ x @ D.T; as one matrix on the flattened 32x32 pixels.
_KRON = np.kron(_D, _D).T.copy()  # (1024, 64)


def phash_image(img: Image.Image) -> str:
    """imagehash.phash(img), bit for bit (no EXIF handling: pass an oriented image)."""
    import scipy.fftpack

    pixels = np.asarray(img.convert("L").resize((IMG_SIZE, IMG_SIZE), Image.Resampling.LANCZOS))
    dct = scipy.fftpack.dct(scipy.fftpack.dct(pixels, axis=0), axis=1)
    low = dct[:HASH_SIZE, :HASH_SIZE]
    return _bits_to_hex((low > np.median(low)).ravel())


def phash_bytes(data: bytes, mode: str = "fast", *, max_pixels: int = DEFAULT_MAX_PIXELS) -> str:
    if mode == "exact":
        return phash_image(_load(data, max_pixels, draft=False))
    if mode != "fast":
        raise ValueError(f"unknown phash mode {mode!r}: use 'fast' or 'exact'")
    return phash_many([data], max_pixels=max_pixels)[0]


def phash_many(
    items: list[bytes], mode: str = "fast", *, max_pixels: int = DEFAULT_MAX_PIXELS
) -> list[str]:
    """Hash a batch; the fast mode does the DCT of the whole batch in one matmul."""
    if mode == "exact":
        return [phash_bytes(data, "exact", max_pixels=max_pixels) for data in items]
    if not items:
        return []
    pixels = np.stack([_small_grey(data, max_pixels) for data in items])
    return hashes_from_pixels(pixels)


def hashes_from_pixels(pixels: np.ndarray) -> list[str]:
    """(n, 32, 32) greyscale arrays -> n hex hashes."""
    return [bytes(row).hex() for row in _bits(_coefficients(pixels))]


def _coefficients(pixels: np.ndarray) -> np.ndarray:
    """(n, 32, 32) pixels -> (n, 64) low-frequency DCT coefficients (8x8, row-major)."""
    return pixels.reshape(len(pixels), IMG_SIZE * IMG_SIZE).astype(np.float64) @ _KRON


def _bits(coeffs: np.ndarray) -> np.ndarray:
    return np.packbits(coeffs > np.median(coeffs, axis=1, keepdims=True), axis=1)


# The turns and mirrors of an image, whose pHashes come from the same 8x8 DCT block: mirroring
# the 32x32 pixels left-right negates the block's odd columns, upside down its odd rows, and
# transposing the pixels transposes it. So each variant's hash is exactly the hash of the
# transformed pixels, without decoding anything again (and within a bit or two of the hash of
# the transformed file). Name -> (negate odd rows, negate odd columns, transpose).
TRANSFORMS = {
    "rot90": (True, False, True),  # counter-clockwise, as PIL's Image.rotate(90)
    "rot180": (True, True, False),
    "rot270": (False, True, True),
    "flip": (False, True, False),  # left-right
    "flip_v": (True, False, False),
    "transpose": (False, False, True),
    "transverse": (True, True, True),
}
ROTATIONS = frozenset({"rot90", "rot180", "rot270"})
_ODD = (-1.0) ** np.arange(HASH_SIZE)


def variant_codes(pixels: np.ndarray) -> np.ndarray:
    """(n, 32, 32) pixels -> (n, 7) uint64 pHashes of each image's TRANSFORMS, in that order."""
    block = _coefficients(pixels).reshape(len(pixels), HASH_SIZE, HASH_SIZE)
    out = np.empty((len(pixels), len(TRANSFORMS)), dtype=np.uint64)
    for k, (rows, columns, transpose) in enumerate(TRANSFORMS.values()):
        turned = block.transpose(0, 2, 1) if transpose else block
        if rows:
            turned = turned * _ODD[:, None]
        if columns:
            turned = turned * _ODD[None, :]
        packed = _bits(turned.reshape(len(pixels), HASH_SIZE * HASH_SIZE))
        out[:, k] = packed.view(">u8").ravel()
    return out


def phash_and_variants(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[str, bytes]:
    """The fast pHash (hex) and its TRANSFORMS' pHashes (7 big-endian 8-byte codes, 56 bytes:
    the media row's `phash_variants`), from one decode."""
    pixels = _small_grey(data, max_pixels)[None]
    return hashes_from_pixels(pixels)[0], variant_codes(pixels)[0].astype(">u8").tobytes()


def variants_from_bytes(data: bytes) -> list[int]:
    """A row's `phash_variants` as signed 64-bit codes (the pHash index's form)."""
    return np.frombuffer(data, dtype=">i8").tolist()


def _small_grey(data: bytes, max_pixels: int) -> np.ndarray:
    img = _load(data, max_pixels, draft=True)
    small = img.convert("L").resize((IMG_SIZE, IMG_SIZE), Image.Resampling.LANCZOS)
    return np.asarray(small)


def _load(data: bytes, max_pixels: int, *, draft: bool) -> Image.Image:
    img, info = open_image(data, max_pixels=max_pixels)
    try:
        if draft and info.format == "jpeg":
            img.draft("L", (DRAFT_SIZE, DRAFT_SIZE))
        img.load()
        return exif_transpose(img)
    except DECODE_ERRORS as exc:
        raise InvalidImage(f"corrupt or truncated {info.format} image: {exc}") from None


def _bits_to_hex(bits: np.ndarray) -> str:
    return bytes(np.packbits(bits)).hex()


def hamming(a: str, b: str) -> int:
    return (int(a, 16) ^ int(b, 16)).bit_count()


def hex_to_int64(h: str) -> int:
    """Signed 64-bit integer (for BIGINT columns and FAISS ids), same bits as the hex."""
    return int.from_bytes(bytes.fromhex(h), "big", signed=True)


def int64_to_hex(value: int) -> str:
    return (value & 0xFFFF_FFFF_FFFF_FFFF).to_bytes(8, "big").hex()


def hex_to_bytes(h: str) -> bytes:
    """8 bytes, most significant bit first: the row layout of a FAISS binary index."""
    return bytes.fromhex(h)


def bytes_to_hex(b: bytes) -> str:
    return b.hex()
