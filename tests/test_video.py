"""busque.media.video on real videos encoded by PyAV: metadata, keyframe pHashes, refusals."""

from __future__ import annotations

import pytest
from PIL import Image

from busque.media.decode import MediaError
from busque.media.video import (
    MAX_FORWARD,
    InvalidVideo,
    keyframe_phashes,
    probe_video,
    video_near_duplicates,
)
from tests.video_files import corrupt_video, make_audio, make_video, pick_codec, transcode

# Container -> (ffmpeg's decoder name for the encoder tests/video_files.py picks, format name).
DECODER = {"libx264": "h264", "mpeg4": "mpeg4", "libvpx-vp9": "vp9", "libvpx": "vp8"}
FORMAT = {"mp4": "mp4", "mkv": "matroska", "webm": "webm", "avi": "avi", "mov": "mov"}


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    """One astronaut clip (4 s, 320x240, a keyframe every 12 frames), its re-encodes, and an
    unrelated clip: made once for the module, the machine is small."""
    root = tmp_path_factory.mktemp("videos")
    original = make_video(root / "original.mp4", seconds=4, size=(320, 240), gop=12)
    return {
        "original": original,
        # Smaller, another codec and keyframe interval, a tenth of the bitrate.
        "reencoded_webm": transcode(
            original, root / "small.webm", size=(160, 120), bit_rate=100_000
        ),
        "reencoded_mkv": transcode(
            original, root / "mid.mkv", size=(240, 180), bit_rate=80_000, gop=7
        ),
        "other": make_video(root / "other.mp4", seconds=4, size=(320, 240), photo="coffee"),
        "noise": make_video(root / "noise.mp4", seconds=4, size=(320, 240), pattern="noise"),
    }


@pytest.mark.parametrize("kind", ["mp4", "mkv", "webm", "avi", "mov"])
def test_probe_reports_duration_fps_size_codec(tmp_path, kind):
    path = make_video(tmp_path / f"clip.{kind}", seconds=2.0, fps=10, size=(160, 120))
    info = probe_video(path)
    assert info.duration_s == pytest.approx(2.0, abs=0.2)
    assert info.fps == pytest.approx(10.0)
    assert (info.width, info.height) == (160, 120)
    assert info.codec == DECODER[pick_codec(kind)]
    assert info.format == FORMAT[kind]
    assert info.frames in (None, 20)  # mkv and webm headers do not count frames


def test_probe_other_rate_and_size(tmp_path):
    info = probe_video(make_video(tmp_path / "c.mp4", seconds=3.0, fps=25, size=(200, 150)))
    assert info.duration_s == pytest.approx(3.0, abs=0.2)
    assert (info.fps, info.width, info.height, info.frames) == (25.0, 200, 150, 75)


def test_keyframe_hashes_are_spread_and_in_imagehash_format(videos):
    hashes = keyframe_phashes(videos["original"], max_frames=8)
    assert len(hashes) == 8
    times = [t for t, _ in hashes]
    assert times == sorted(set(times))
    assert 0 <= times[0] < 0.5 and 3.5 < times[-1] <= 4.0  # the centres of 8 slices of 4 s
    assert all(len(h) == 16 and int(h, 16) >= 0 for _, h in hashes)
    assert len({h for _, h in hashes}) == 8  # a panning camera: every sample differs


def test_reencoded_copy_is_a_near_duplicate(videos):
    original = [h for _, h in keyframe_phashes(videos["original"])]
    for name in ("reencoded_webm", "reencoded_mkv"):
        copy = [h for _, h in keyframe_phashes(videos[name])]
        assert video_near_duplicates(original, copy) >= 0.8, name
        assert video_near_duplicates(copy, original) >= 0.8, name


def test_different_videos_score_low(videos):
    original = [h for _, h in keyframe_phashes(videos["original"])]
    for name in ("other", "noise"):
        other = [h for _, h in keyframe_phashes(videos[name])]
        assert video_near_duplicates(original, other) < 0.5, name


def test_near_duplicate_score():
    a = ["0000000000000000", "ffffffffffffffff"]
    assert video_near_duplicates(a, ["00000000000000ff"]) == 0.5  # 8 bits away: within radius
    assert video_near_duplicates(a, ["00000000000001ff"]) == 0.0  # 9 bits away
    assert video_near_duplicates(a, ["00000000000001ff"], radius=9) == 0.5
    assert video_near_duplicates(a, a) == 1.0
    assert video_near_duplicates([], a) == 0.0
    assert video_near_duplicates(a, []) == 0.0


def test_long_video_is_sampled_not_decoded_whole(tmp_path):
    # 20 s with a keyframe every 2 s: the samples come from seeks, at most max_frames of them.
    path = make_video(tmp_path / "long.mp4", seconds=20, fps=10, size=(160, 120), gop=20)
    hashes = keyframe_phashes(path, max_frames=6)
    assert 1 <= len(hashes) <= 6
    times = [t for t, _ in hashes]
    assert times == sorted(set(times)) and times[-1] > 15  # reached the end by seeking


def test_sparse_keyframes_stay_bounded(tmp_path):
    # One keyframe in 20 s (gop longer than the video): each sample decodes at most MAX_FORWARD
    # frames, so the samples bunch up near the start instead of decoding the whole video.
    path = make_video(tmp_path / "onekey.mp4", seconds=20, fps=25, size=(96, 64), gop=1000)
    hashes = keyframe_phashes(path, max_frames=4)
    assert 1 <= len(hashes) <= 4
    assert hashes[-1][0] < 4 * MAX_FORWARD / 25


def test_short_video_dedups_repeated_frames(tmp_path):
    path = make_video(tmp_path / "three.mp4", seconds=0.3, fps=10, size=(96, 64))
    hashes = keyframe_phashes(path, max_frames=8)  # more samples than frames
    times = [t for t, _ in hashes]
    assert 1 <= len(hashes) <= 3 and times == sorted(set(times))


@pytest.mark.parametrize("kind", ["mp4", "avi"])
def test_truncated_file_is_invalid(tmp_path, kind):
    # mp4 keeps its index (moov) at the end; avi a header whose stream list is cut off.
    source = make_video(tmp_path / f"full.{kind}", seconds=2.0, size=(160, 120))
    broken = corrupt_video(source, tmp_path / f"cut.{kind}", keep=0.5 if kind == "mp4" else 0.02)
    for fn in (probe_video, keyframe_phashes):
        with pytest.raises(InvalidVideo) as err:
            fn(broken)
        assert (err.value.status, err.value.code) == (422, "invalid_video")
        assert str(tmp_path) not in str(err.value)  # no server path in an API error


def test_truncated_mkv_keeps_what_decodes(tmp_path):
    # Matroska streams its header first: a cut file still plays up to the cut, like in players.
    source = make_video(tmp_path / "full.mkv", seconds=2.0, size=(160, 120))
    broken = corrupt_video(source, tmp_path / "cut.mkv", keep=0.5)
    hashes = keyframe_phashes(broken)
    assert 1 <= len(hashes) < 8 and hashes[-1][0] < 1.5


def test_junk_renamed_as_video_is_invalid(tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("meeting notes, not a video\n" * 20)
    photo = tmp_path / "photo.mp4"
    Image.new("RGB", (64, 48), (200, 30, 30)).save(photo, "JPEG")  # a still, not a video
    empty = tmp_path / "empty.mkv"
    empty.write_bytes(b"")
    for path in (text, photo, empty):
        for fn in (probe_video, keyframe_phashes):
            with pytest.raises(InvalidVideo):
                fn(path)


def test_audio_only_file_has_no_video_stream(tmp_path):
    audio = make_audio(tmp_path / "voice.mp4", seconds=1.0)
    for fn in (probe_video, keyframe_phashes):
        with pytest.raises(InvalidVideo, match="no video stream"):
            fn(audio)


def test_invalid_video_is_a_media_error():
    assert issubclass(InvalidVideo, MediaError)
    assert (InvalidVideo.status, InvalidVideo.code) == (422, "invalid_video")


def test_missing_file_is_not_an_invalid_video(tmp_path):
    with pytest.raises(FileNotFoundError):
        probe_video(tmp_path / "nope.mp4")


def test_portrait_phone_video_is_hashed_as_displayed(tmp_path):
    # Stored sideways with a display matrix, like a phone's portrait video: probe gives the
    # displayed size, and the hashes match the same clip stored upright.
    upright = make_video(tmp_path / "upright.mp4", seconds=2, size=(120, 160))
    for rotation in (90, 270):
        turned = make_video(
            tmp_path / f"turned{rotation}.mp4", seconds=2, size=(120, 160), rotation=rotation
        )
        info = probe_video(turned)
        assert (info.width, info.height, info.rotation) == (120, 160, rotation)
        a = [h for _, h in keyframe_phashes(upright)]
        b = [h for _, h in keyframe_phashes(turned)]
        assert video_near_duplicates(a, b, radius=4) == 1.0
    assert probe_video(upright).rotation == 0
