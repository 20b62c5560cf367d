"""Image decoding, normalisation and perceptual hashing (no Ray, no web framework)."""

from busque.media.decode import (
    DecodedImage,
    ImageInfo,
    ImageTooLarge,
    InvalidImage,
    MediaError,
    UnsupportedFormat,
    decode_image,
    image_info,
)
from busque.media.phash import hamming, phash_bytes, phash_image, phash_many

__all__ = [
    "DecodedImage",
    "ImageInfo",
    "ImageTooLarge",
    "InvalidImage",
    "MediaError",
    "UnsupportedFormat",
    "decode_image",
    "hamming",
    "image_info",
    "phash_bytes",
    "phash_image",
    "phash_many",
]
