"""Duplicate groups on real photos with everyday edits: precision and recall per edit kind and per
path, through the service's own pair finder (busque.index.live.LiveIndex.duplicate_pairs over a
real SQLite catalog, as GET /v1/duplicates runs it).

Photos: scikit-image's and matplotlib's real photos (split in two halves), and hard negatives in
both halves: two shots of one scene from scikit-image's stereo pair (the left and the right
camera, a few centimetres apart), the left side of the scene in the tuning half and the right
side in the scored half (no pixel of one is in the other). Edits: quarter and
half turns, a mirror, 10/20/30% crops, a half-size re-save at JPEG quality 20, greyscale, a
caption bar, a border, a text watermark. Every pair of images is a question: "duplicates?" —
yes when both come from the same photo. The thresholds (pHash radius, embedding cosine) are
chosen on the first half (the most recall at precision >= 0.98) and scored on the second; the
service's defaults are scored too. Paths: `phash` (the pHash alone), `phash+turns` (also the
pHashes of each photo's turns and mirrors), `visual` (EfficientNet-Lite0 cosine) and `groups`
(any of them: what the service groups). Every pair is then checked against its pixels
(busque.media.same_picture, index.min_pixel_agreement): its threshold is chosen on the first
half with the others.

The peer a user would pick: imagededup's PHash (`encode_image`, then pairs within its default
`max_distance_threshold` of 10, its documented call; also with a threshold chosen on the tuning
half), where imagededup is installed. busque against it on the scored half: per photo, the
difference in recall of its pairs and in false positives, its median with a distribution-free
interval over the photos, read as ahead / level / behind. Precision-recall curves of every
signal and of the peer are plotted. Writes bench/results/duplicates.json, .md and .png.

    python bench/duplicates.py             # about 3 minutes on 2 cores
    python bench/duplicates.py --quick     # 3 photos, the 4 shots, 4 edits: writes nothing
"""

from __future__ import annotations

import dataclasses
import io
import itertools
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import harness
from busque.config import IndexSettings, Settings
from busque.index.live import LiveIndex
from busque.media import same_picture
from busque.media.decode import decode_image
from busque.media.normalize import normalized_jpeg
from busque.media.pair_checks import PairChecks
from busque.media.phash import (
    TRANSFORMS,
    hex_to_int64,
    phash_and_variants,
    variants_from_bytes,
)
from busque.models.embedding import create_embedder
from busque.runtime import Runtime

# Hard negatives: two shots of one scene (scikit-image's stereo pair: its left and right
# cameras, a few centimetres apart) are different photos. The scene's left side is in the tuning
# half, its right side in the scored half: each half asks its own pair.
SHOTS = {  # name: (side of the scene, camera)
    "motorcycle, left side, left camera": ("left side", 0),
    "motorcycle, left side, right camera": ("left side", 1),
    "motorcycle, right side, left camera": ("right side", 0),
    "motorcycle, right side, right camera": ("right side", 1),
}
TUNE_SHOTS, SCORE_SHOTS = list(SHOTS)[:2], list(SHOTS)[2:]
PHOTOS = (
    "astronaut",
    "camera",
    "chelsea",
    "coffee",
    "rocket",
    "grace_hopper",
    "brick",
    "grass",
    "gravel",
    "coins",
    "moon",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "clock",
)
QUICK_PHOTOS = ("astronaut", "coffee", "camera")
QUICK_EDITS = ("rot90", "crop_20", "resave_q20", "caption")
GOAL_PRECISION = 0.98
IMAGEDEDUP_DEFAULT = 10  # PHash.find_duplicates' max_distance_threshold
COST = {"picture_ms": [], "agreement_ms": []}  # the pixel check's, one core


def load(name: str) -> Image.Image:
    if name in SHOTS:
        import skimage.data

        side, camera = SHOTS[name]
        view = Image.fromarray(skimage.data.stereo_motorcycle()[camera]).convert("RGB")
        half = view.width // 2
        return view.crop(
            (0, 0, half, view.height) if side == "left side" else (half, 0, view.width, view.height)
        )
    return harness.photo(name)


def scene(photo: str) -> str | None:
    """The scene a shot is of (two shots of one scene are a hard negative), None for a photo."""
    return SHOTS[photo][0] if photo in SHOTS else None


def two_shots(a: dict, b: dict) -> bool:
    """Whether two items are of two shots of one scene (different photos)."""
    return (
        a["photo"] != b["photo"]
        and scene(a["photo"]) is not None
        and scene(a["photo"]) == scene(b["photo"])
    )


def jpeg(image: Image.Image, quality: int = 92) -> bytes:
    out = io.BytesIO()
    image.convert("RGB").save(out, "JPEG", quality=quality)
    return out.getvalue()


def crop(share: float):
    def cut(im: Image.Image) -> Image.Image:
        dx, dy = int(im.width * share / 2), int(im.height * share / 2)
        return im.crop((dx, dy, im.width - dx, im.height - dy))

    return cut


def caption(im: Image.Image) -> Image.Image:
    bar = int(im.height * 0.12)
    out = Image.new("RGB", (im.width, im.height + bar), (20, 20, 20))
    out.paste(im, (0, 0))
    ImageDraw.Draw(out).text((10, im.height + bar // 3), "Holidays 2019, day 3", fill="white")
    return out


def watermark(im: Image.Image) -> Image.Image:
    marked = im.convert("RGB").copy()
    draw = ImageDraw.Draw(marked)
    for row in range(4):
        draw.text((im.width * 0.1, im.height * (0.2 + 0.2 * row)), "(c) photo", fill="white")
    return marked


EDITS = {
    "rot90": lambda im: im.transpose(Image.Transpose.ROTATE_90),
    "rot180": lambda im: im.transpose(Image.Transpose.ROTATE_180),
    "mirror": ImageOps.mirror,
    "crop_10": crop(0.10),
    "crop_20": crop(0.20),
    "crop_30": crop(0.30),
    "resave_q20": lambda im: Image.open(
        io.BytesIO(jpeg(im.resize((im.width // 2, im.height // 2)), 20))
    ),
    "grey": lambda im: ImageOps.grayscale(im).convert("RGB"),
    "caption": caption,
    "border": lambda im: ImageOps.expand(im, border=max(im.size) // 12, fill="white"),
    "watermark": watermark,
}


def scores(truth: list[bool], said: list[bool]) -> dict:
    tp = sum(t and s for t, s in zip(truth, said, strict=True))
    fp = sum(s and not t for t, s in zip(truth, said, strict=True))
    fn = sum(t and not s for t, s in zip(truth, said, strict=True))
    return {
        "precision": round(tp / (tp + fp), 4) if tp + fp else 1.0,
        "recall": round(tp / (tp + fn), 4) if tp + fn else 1.0,
        "true_positives": tp,
        "false_positives": fp,
        "false_negatives": fn,
    }


def imagededup_installed() -> bool:
    """imagededup and what its hashing needs (`pip install --no-deps imagededup==0.3.3.post2
    scikit-learn PyWavelets`: its declared deps would pull torchvision and a CUDA torch)."""
    import importlib.util

    return all(importlib.util.find_spec(n) is not None for n in ("imagededup", "sklearn", "pywt"))


def analyse(items: list[dict], embedder, peer: bool) -> None:
    """Each item's pHash, its turns' pHashes and its embedding, as ingest computes them; and,
    given `peer`, imagededup's PHash of the same JPEG (its encode_image on the decoded array)."""
    hasher = None
    if peer:
        from bench.peers.imagededup_import import phash_class

        hasher = phash_class()(verbose=False)
    for item in items:
        phash, variants = phash_and_variants(item["jpeg"])
        item["phash"], item["variants"] = hex_to_int64(phash), variants
        if hasher is not None:
            pixels = np.asarray(Image.open(io.BytesIO(item["jpeg"])).convert("RGB"))
            item["imagededup"] = int(hasher.encode_image(image_array=pixels), 16)
    decoded = [decode_image(i["jpeg"], max_pixels=50_000_000, max_side=2048) for i in items]
    for item, image in zip(items, decoded, strict=True):
        item["normalized"] = normalized_jpeg(image)
        started = time.perf_counter()
        item["picture"] = same_picture.picture(item["normalized"])
        COST["picture_ms"].append((time.perf_counter() - started) * 1000)
    normalized = [Image.open(io.BytesIO(i["normalized"])) for i in items]
    vectors, _ = embedder.analyze(normalized)
    for item, vector in zip(items, vectors, strict=True):
        item["vector"] = np.asarray(vector, dtype=np.float32)


def raw_pairs(items: list[dict]) -> list[dict]:
    """Every pair's pHash distance (alone, and at best over the turns) and cosine."""
    out = []
    for a, b in itertools.combinations(items, 2):
        plain = (a["phash"] ^ b["phash"]) & (2**64 - 1)
        turned = [
            (code ^ other["phash"]) & (2**64 - 1)
            for x, other in ((a, b), (b, a))
            for code in variants_from_bytes(x["variants"])
        ]
        out.append(
            {
                "same": a["photo"] == b["photo"],
                "edit": b["edit"] if a["edit"] == "original" else a["edit"],
                "with_original": "original" in (a["edit"], b["edit"]),
                "stereo": two_shots(a, b),
                "phash": plain.bit_count(),
                "turned": min([plain.bit_count(), *(t.bit_count() for t in turned)]),
                "cosine": float(a["vector"] @ b["vector"]),
                "imagededup": (a["imagededup"] ^ b["imagededup"]).bit_count()
                if "imagededup" in a
                else None,
                "agreement": timed_agreement(a["picture"], b["picture"]),
            }
        )
    return out


def timed_agreement(a, b) -> float | None:
    started = time.perf_counter()
    found = same_picture.agreement(a, b)
    COST["agreement_ms"].append((time.perf_counter() - started) * 1000)
    return found


def choose(pairs: list[dict], check: bool = True) -> tuple[int, float, float | None]:
    """The radius, cosine and pixel agreement whose groups find the most pairs at precision >=
    the goal (agreement None: no check; check=False: only that). Of equal recall, the
    strictest thresholds are kept."""
    truth = np.array([p["same"] for p in pairs])
    turned = np.array([p["turned"] for p in pairs])
    cosines = np.array([p["cosine"] for p in pairs])
    agreement = np.array([np.nan if p["agreement"] is None else p["agreement"] for p in pairs])
    best = (-1.0, 0, 1.0, None)
    for radius in range(0, 25):
        for cosine in np.arange(0.99, 0.0, -0.01):
            candidate = (turned <= radius) | (cosines >= cosine)
            # No check (None) is the loosest: tried last, it wins only with more recall.
            for checked in (*(np.arange(0.99, 0.49, -0.01) if check else ()), None):
                said = candidate
                if checked is not None:
                    said = candidate & (np.isnan(agreement) | (agreement >= checked - 1e-9))
                tp, fp = int((said & truth).sum()), int((said & ~truth).sum())
                precision = tp / (tp + fp) if tp + fp else 1.0
                recall = tp / int(truth.sum())
                if precision >= GOAL_PRECISION and recall > best[0]:
                    agree = None if checked is None else round(float(checked), 2)
                    best = (recall, radius, round(float(cosine), 2), agree)
    return best[1], best[2], best[3]


def best_threshold(pairs: list[dict], signal) -> tuple[float, float]:
    """The threshold of `signal(pair)` with the most recall at precision >= the goal:
    (threshold, recall); (inf, 0) when none reaches the precision."""
    truth = [p["same"] for p in pairs]
    values = [signal(p) for p in pairs]
    best = (float("inf"), 0.0)
    for threshold in sorted(set(values), reverse=True):  # the strictest first
        got = scores(truth, [v >= threshold for v in values])
        if got["precision"] >= GOAL_PRECISION and got["recall"] > best[1]:
            best = (threshold, got["recall"])
    return best


def hybrid_ceiling(tune: list[dict], score: list[dict], w: float) -> dict:
    """Could one score of both signals do better than either path? The service's hybrid score
    (w * cosine + (1 - w) * (1 - pHash bits / 64), the pHash at best over the turns): its
    threshold chosen on the tuning half and scored, and the most recall any threshold reaches
    at the goal's precision on the scored half itself (a ceiling: chosen on the answers)."""

    def hybrid(p: dict) -> float:
        return w * p["cosine"] + (1 - w) * (1 - p["turned"] / 64)

    threshold, _ = best_threshold(tune, hybrid)
    truth = [p["same"] for p in score]
    chosen = scores(truth, [hybrid(p) >= threshold for p in score])
    ceiling_threshold, ceiling_recall = best_threshold(score, hybrid)
    return {
        "w_visual": w,
        "threshold": round(threshold, 4),
        **chosen,
        "ceiling_threshold": round(ceiling_threshold, 4),
        "ceiling_recall": ceiling_recall,
    }


@dataclass(frozen=True)
class Setting:
    """The service's thresholds a run is scored at."""

    radius: int
    min_cosine: float
    min_agreement: float | None  # index.min_pixel_agreement (None: no pixel check)
    min_score: float | None = None  # the hybrid path's (None: off)


def service_pairs(items: list[dict], setting: Setting) -> dict:
    """The pairs busque's own finder reports for these items, catalogued as ingest would (their
    normalised renditions in the object store, for the pixel check)."""
    with tempfile.TemporaryDirectory() as home:
        runtime = Runtime(Settings(home=home))
        runtime.migrate()
        tenant = runtime.keys.ensure_tenant("bench")
        ids = {}
        for item in items:
            normalized_key = f"{tenant}/normalized/{len(ids)}.jpg"
            runtime.objects.put(normalized_key, item["normalized"], "image/jpeg")
            row = runtime.catalog.create(
                tenant,
                "eval",
                sha256=f"{len(ids):064x}",
                phash=item["phash"],
                phash_variants=item["variants"],
                width=1,
                height=1,
                format="jpeg",
                size=len(item["jpeg"]),
                metadata={},
            )
            runtime.catalog.mark_indexed(
                row["id"],
                keys={"original": "o", "normalized": normalized_key, "thumbnail": "t"},
                embedding=item["vector"],
                embedding_model="efficientnet-lite0",
                embedding_version="1",
                labels=[],
            )
            ids[row["index_id"]] = item
        live = LiveIndex(
            runtime.catalog,
            runtime.objects,
            len(items[0]["vector"]),
            min_pixel_agreement=setting.min_agreement,
            pair_checks=PairChecks(runtime.engine),
        )
        found = live.duplicate_pairs(
            tenant, "eval", setting.radius, setting.min_cosine, min_score=setting.min_score
        )
    return {
        frozenset((id(ids[a]), id(ids[b]))): {
            "phash": d,
            "transform": t,
            "cosine": c,
            "score": score,
        }
        for a, b, d, c, t, score in found
    }


def evaluate(items: list[dict], setting: Setting) -> dict:
    """Precision and recall per path, and recall per edit kind (of the pairs original-edit)."""
    found = service_pairs(items, setting)
    pairs = list(itertools.combinations(items, 2))
    truth = [a["photo"] == b["photo"] for a, b in pairs]

    def verdicts(test) -> list[bool]:
        return [
            (hit := found.get(frozenset((id(a), id(b))))) is not None and test(hit)
            for a, b in pairs
        ]

    paths = {
        "phash": verdicts(lambda h: h["phash"] is not None and h["transform"] is None),
        "phash+turns": verdicts(lambda h: h["phash"] is not None),
        "visual": verdicts(lambda h: h["cosine"] is not None and h["score"] is None),
        "groups": verdicts(lambda h: True),
    }
    if setting.min_score is not None:
        paths["hybrid"] = verdicts(lambda h: h["score"] is not None)
    out = {"paths": {name: scores(truth, said) for name, said in paths.items()}}
    stereo = [two_shots(a, b) for a, b in pairs]
    for name, said in paths.items():  # how many false positives are the stereo views' pairs
        out["paths"][name]["false_positives_stereo"] = sum(
            s and st for s, st in zip(said, stereo, strict=True)
        )
    by_edit = {}
    for edit in edits_in(items):
        chosen = [
            k
            for k, (a, b) in enumerate(pairs)
            if truth[k] and {a["edit"], b["edit"]} == {"original", edit}
        ]
        by_edit[edit] = {
            name: round(sum(said[k] for k in chosen) / len(chosen), 3)
            for name, said in paths.items()
        }
    out["recall_by_edit"] = by_edit
    return out, paths["groups"]


def edits_in(items: list[dict]) -> list[str]:
    """The edits these items were made with, in EDITS' order."""
    made = {i["edit"] for i in items}
    return [edit for edit in EDITS if edit in made]


def stereo_grouped(items: list[dict], setting: Setting) -> bool:
    views = [i for i in items if i["edit"] == "original" and i["photo"] in SHOTS]
    return frozenset(id(v) for v in views) in service_pairs(items, setting)


def table(result: dict) -> list[str]:
    lines = [
        "| path | precision | recall | false positives (of them, two shots of one scene) "
        "| missed pairs |",
        "|---|---|---|---|---|",
    ]
    for name, got in result["paths"].items():
        lines.append(
            f"| {name} | {got['precision']:.3f} | {got['recall']:.3f} | "
            f"{got['false_positives']} ({got['false_positives_stereo']}) | "
            f"{got['false_negatives']} |"
        )
    lines += ["", "Recall of the pair (original, edit), by edit:", ""]
    names = list(result["paths"])
    lines.append("| edit | " + " | ".join(names) + " |")
    lines.append("|---|" + "---|" * len(names))
    for edit, got in result["recall_by_edit"].items():
        lines.append(f"| {edit} | " + " | ".join(f"{got[n]:.2f}" for n in names) + " |")
    return lines


def agreement_kinds(pairs: list[dict]) -> dict[str, list[dict]]:
    """The pairs of one photo, of two shots of one scene, and of different photos."""
    return {
        "same photo": [p for p in pairs if p["same"]],
        "stereo views": [p for p in pairs if p["stereo"]],
        "different photos": [p for p in pairs if not p["same"] and not p["stereo"]],
    }


def agreement_spread(pairs: list[dict]) -> dict:
    """The pixel agreement of the pairs of one photo, of two shots of one scene, and of the
    others."""
    out = {}
    for kind, chosen in agreement_kinds(pairs).items():
        values = [p["agreement"] for p in chosen if p["agreement"] is not None]
        out[kind] = {
            "pairs": len(chosen),
            "no_verdict": len(chosen) - len(values),
            "min": round(min(values), 4) if values else None,
            "median": round(float(np.median(values)), 4) if values else None,
            "max": round(max(values), 4) if values else None,
        }
    return out


# ---- the peer: imagededup's PHash -----------------------------------------------------------


def peer_verdicts(pairs: list[dict], max_distance: float) -> list[bool]:
    """imagededup's answer for each pair: duplicates when its PHashes are within max_distance."""
    return [p["imagededup"] <= max_distance for p in pairs]


def per_photo(score: list[dict], truth: list[bool], mine: list[bool], theirs: list[bool]):
    """busque against the peer, photo by photo of the scored half: the difference in recall of
    each photo's pairs (busque - peer: > 0 is busque ahead) and in false positives each photo
    takes part in (peer - busque: > 0 is busque ahead); each difference's median with a
    distribution-free interval over the photos and its verdict."""
    pairs = list(itertools.combinations(score, 2))
    recall, false = [], []
    for photo in dict.fromkeys(i["photo"] for i in score):
        mine_hits = theirs_hits = positives = mine_fp = theirs_fp = 0
        for k, (a, b) in enumerate(pairs):
            if photo not in (a["photo"], b["photo"]):
                continue
            if truth[k]:
                positives += 1
                mine_hits += mine[k]
                theirs_hits += theirs[k]
            else:
                mine_fp += mine[k]
                theirs_fp += theirs[k]
        recall.append((mine_hits - theirs_hits) / positives)
        false.append(float(theirs_fp - mine_fp))
    out = {}
    for name, values in (("recall", recall), ("false_positives", false)):
        interval = harness.median_interval(values)
        verdict = "ahead" if interval["low"] > 0 else "behind" if interval["high"] < 0 else "level"
        out[name] = {**harness.scaled(interval, 1, 4), "verdict": verdict}
    return out


def peer(tune_pairs: list[dict], scored_pairs: list[dict], score: list[dict], groups: list[bool]):
    """imagededup at its default threshold and at the one chosen on the tuning half: scores on
    the scored half, recall by edit, and busque's groups (the tuned setting) against each."""
    tuned, _ = best_threshold(tune_pairs, lambda p: -p["imagededup"])
    truth = [p["same"] for p in scored_pairs]
    out = {}
    for label, distance in (
        (f"imagededup PHash, its default ({IMAGEDEDUP_DEFAULT} bits)", IMAGEDEDUP_DEFAULT),
        (f"imagededup PHash, chosen on the tuning half ({-tuned:g} bits)", -tuned),
    ):
        said = peer_verdicts(scored_pairs, distance)
        got = scores(truth, said)
        got["false_positives_stereo"] = sum(
            s and p["stereo"] for s, p in zip(said, scored_pairs, strict=True)
        )
        by_edit = {}
        for edit in edits_in(score):
            chosen = [k for k, p in enumerate(scored_pairs) if p["same"] and p["with_original"]
                      and p["edit"] == edit]  # fmt: skip
            by_edit[edit] = round(sum(said[k] for k in chosen) / len(chosen), 3)
        out[label] = {
            "max_distance": distance,
            **got,
            "recall_by_edit": by_edit,
            "busque_vs_this": per_photo(score, truth, groups, said),
        }
    return out


# ---- the curves and the plot ----------------------------------------------------------------


def curve(pairs: list[dict], signal, thresholds) -> list[list[float]]:
    """[recall, precision] of `signal(pair) >= t` for each threshold t."""
    truth = [p["same"] for p in pairs]
    values = [signal(p) for p in pairs]
    out = []
    for t in thresholds:
        got = scores(truth, [v is not None and v >= t for v in values])
        out.append([got["recall"], got["precision"]])
    return out


def curves(pairs: list[dict], peer_ran: bool) -> dict:
    """Precision-recall curves on the scored half of each signal alone, no pixel check."""
    bits = range(0, 33)
    found = {
        "pHash (busque)": curve(pairs, lambda p: -p["phash"], [-b for b in bits]),
        "pHash + turns (busque)": curve(pairs, lambda p: -p["turned"], [-b for b in bits]),
        "embedding cosine (busque)": curve(
            pairs, lambda p: p["cosine"], np.arange(0.99, 0.0, -0.01).tolist()
        ),
    }
    if peer_ran:
        found["imagededup PHash"] = curve(pairs, lambda p: -p["imagededup"], [-b for b in bits])
    return found


def plot(data: dict, path: Path) -> None:
    """Left: precision-recall curves of each signal and of imagededup, with the service's
    settings as points; right: the scored half's pairs by pixel agreement."""
    plt = harness.pyplot()
    figure, (left, right) = plt.subplots(1, 2, figsize=(13, 4.6))
    for name, points in data["curves"].items():
        recall, precision = zip(*points, strict=True)
        style = "--" if name.startswith("imagededup") else "-"
        left.plot(recall, precision, style, label=name, marker=".", markersize=3)
    for name, key in (
        ("busque, tuned", "chosen_on_tune_half"),
        ("busque, defaults", "service_defaults"),
        ("busque, no pixel check", "without_pixel_check"),
    ):
        groups = data[key]["paths"]["groups"]
        left.plot(groups["recall"], groups["precision"], "o", markersize=8, label=name)
    for name, got in data["peer"].items():
        left.plot(got["recall"], got["precision"], "x", markersize=9, label=name)
    left.axhline(GOAL_PRECISION, color="grey", linewidth=0.8, linestyle=":")
    left.set_xlabel("recall (pairs of one photo found)")
    left.set_ylabel("precision")
    left.set_title("Scored half: precision against recall")
    left.legend(fontsize=7, loc="lower left")
    bins = np.linspace(0, 1, 51)
    for label, kind, colour in (
        ("same photo (an edit)", "same photo", "tab:green"),
        ("two shots of one scene", "stereo views", "tab:red"),
        ("different photos", "different photos", "tab:grey"),
    ):
        values = [max(v, 0) for v in data["agreement_values"][kind]]
        right.hist(values, bins=bins, alpha=0.6, label=f"{label}: {len(values)}", color=colour)
    threshold = data["chosen_on_tune_half"]["min_pixel_agreement"]
    if threshold is not None:
        right.axvline(threshold, color="black", linestyle="--", label=f"chosen {threshold}")
    right.set_yscale("log")
    right.set_xlabel("pixel agreement (lower quartile of the aligned tiles' correlations)")
    right.set_ylabel("pairs")
    right.set_title("Scored half: pairs by pixel agreement")
    right.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main() -> None:
    cli = harness.parser(__doc__)
    cli.add_argument(
        "--quick",
        action="store_true",
        help=f"{len(QUICK_PHOTOS)} photos and 4 shots, {len(QUICK_EDITS)} edits: a smoke test; "
        "writes nothing",
    )
    args = cli.parse_args()
    regular = QUICK_PHOTOS if args.quick else PHOTOS
    edits = {e: EDITS[e] for e in (QUICK_EDITS if args.quick else EDITS)}
    tune_photos = set(regular[0::2]) | set(TUNE_SHOTS)
    score_photos = set(regular[1::2]) | set(SCORE_SHOTS)
    photos = {name: load(name) for name in (*regular, *SHOTS)}
    items = []
    for name, original in photos.items():
        items.append({"photo": name, "edit": "original", "jpeg": jpeg(original)})
        for edit, apply in edits.items():
            items.append({"photo": name, "edit": edit, "jpeg": jpeg(apply(original))})
    peer_ran = imagededup_installed()
    analyse(items, create_embedder("efficientnet-lite0"), peer_ran)
    tune = [i for i in items if i["photo"] in tune_photos]
    score = [i for i in items if i["photo"] in score_photos]
    tune_pairs, scored_pairs = raw_pairs(tune), raw_pairs(score)
    radius, cosine, agreement = choose(tune_pairs)
    plain_radius, plain_cosine, _ = choose(tune_pairs, check=False)
    defaults = IndexSettings()
    chosen, groups = evaluate(score, Setting(radius, cosine, agreement))
    unchecked_setting = Setting(plain_radius, plain_cosine, None)
    unchecked, _ = evaluate(score, unchecked_setting)
    service = Setting(
        defaults.duplicate_radius, defaults.near_duplicate_cosine, defaults.min_pixel_agreement
    )
    default, _ = evaluate(score, service)
    hybrid = hybrid_ceiling(tune_pairs, scored_pairs, defaults.w_visual)
    hybrid_min = round(hybrid["threshold"], 2)
    default_hybrid, _ = evaluate(score, dataclasses.replace(service, min_score=hybrid_min))
    (views,) = [
        p for p in scored_pairs if p["with_original"] and p["edit"] == "original" and p["stereo"]
    ]
    spread = agreement_spread(scored_pairs)
    peers = peer(tune_pairs, scored_pairs, score, groups) if peer_ran else {}
    data = {
        "benchmark": "duplicate groups on real photos with everyday edits",
        "machine": harness.machine(),
        "photos": {"tune": sorted(tune_photos), "score": sorted(score_photos)},
        "edits": list(edits),
        "turns_searched": list(TRANSFORMS),
        "pixel_check": same_picture.METHOD,
        "pixel_check_cost_ms": {
            name: {
                **harness.scaled(harness.median_interval(v), 1, 2),
                "p90": round(harness.percentile(v, 0.9), 2),
            }
            for name, v in COST.items()
        },
        "images_scored": len(score),
        "goal": {"precision": GOAL_PRECISION, "recall": 0.95},
        "chosen_on_tune_half": {
            "radius": radius,
            "min_cosine": cosine,
            "min_pixel_agreement": agreement,
            **chosen,
        },
        "without_pixel_check": {"radius": plain_radius, "min_cosine": plain_cosine, **unchecked},
        "service_defaults": {
            "radius": defaults.duplicate_radius,
            "min_cosine": defaults.near_duplicate_cosine,
            "min_pixel_agreement": defaults.min_pixel_agreement,
            **default,
        },
        "pixel_agreement_scored_half": spread,
        "hybrid_score": hybrid,
        "service_defaults_with_hybrid": {"min_score": hybrid_min, **default_hybrid},
        "stereo_views": {
            "phash_bits": views["turned"],
            "cosine": round(views["cosine"], 4),
            "pixel_agreement": views["agreement"],
        },
        "hard_negative_pairs": {
            "tune": sum(p["stereo"] for p in tune_pairs),
            "score": sum(p["stereo"] for p in scored_pairs),
        },
        "peer": peers,
        "peer_not_run": None if peer_ran else "imagededup is not installed here",
        "curves": curves(scored_pairs, peer_ran),
        "agreement_values": {
            kind: [p["agreement"] for p in chosen_pairs if p["agreement"] is not None]
            for kind, chosen_pairs in agreement_kinds(scored_pairs).items()
        },
    }

    def verdict(result: dict) -> str:
        groups = result["paths"]["groups"]
        met = groups["precision"] >= GOAL_PRECISION and groups["recall"] >= 0.95
        return f"Goal (recall >= 0.95 at precision >= {GOAL_PRECISION}, all edits): " + (
            f"**met**: recall {groups['recall']:.3f} at precision {groups['precision']:.3f}."
            if met
            else f"**not met**: recall {groups['recall']:.3f} at precision "
            f"{groups['precision']:.3f}."
        )

    same, stereo, other = spread.values()
    cost = data["pixel_check_cost_ms"]
    lines = [
        "# Duplicate groups on real photos with everyday edits",
        "",
        f"{len(regular)} real photos (scikit-image, matplotlib) and {len(SHOTS)} shots (two "
        f"cameras x two sides of one scene) x {len(edits) + 1} versions; thresholds chosen on "
        f"{len(tune_photos)} photos, scored on the other {len(score_photos)} "
        f"({len(score)} images, every pair a question). Each half holds one hard negative: two "
        "shots of one scene (the left and right cameras of scikit-image's stereo pair, a few "
        "centimetres apart; the scene's left side in the tuning half, its right side in the "
        "scored half). Pairs of two shots (the shots and their edits): "
        f"{data['hard_negative_pairs']['tune']} in the tuning half, "
        f"{data['hard_negative_pairs']['score']} in the scored half.",
        "",
        "Candidate pairs come from the pHash (and the pHashes of each photo's turns and mirror) "
        "and the embedding; each is then checked against its pixels "
        f"(`{same_picture.METHOD}`, busque.media.same_picture): ORB keypoints matched, a "
        "similarity transform fitted by RANSAC, one photo warped onto the other, and the lower "
        "quartile of the correlations of the aligned 32-px tiles. A pair whose agreement is below "
        "`index.min_pixel_agreement` is not a duplicate; two textured photos that do not "
        "align at all score 0; a pair with too little texture to tell gets no verdict and "
        "stands or falls by its pHash and embedding.",
        "",
        f"## Chosen on the tuning half: radius {radius}, min_cosine {cosine}, "
        f"min_pixel_agreement {agreement}",
        "",
        *table(chosen),
        "",
        verdict(chosen),
        "",
        "## Pixel agreement on the scored half",
        "",
        "| pairs | count | no verdict | min | median | max |",
        "|---|---|---|---|---|---|",
        *(
            f"| {kind} | {got['pairs']} | {got['no_verdict']} | {got['min']} | "
            f"{got['median']} | {got['max']} |"
            for kind, got in spread.items()
        ),
        "",
        "![precision-recall curves and pixel agreement](duplicates.png)",
        "",
        "Its cost on one core: a photo's picture (decode at 512 px, ORB keypoints of it and "
        f"its mirror) {harness.show(cost['picture_ms'])} ms, a pair's check "
        f"{harness.show(cost['agreement_ms'])} ms (medians [interval] of every call). Each "
        "verdict is stored by the pair's "
        "bytes (table pair_checks), so a pair is checked once. At 100,000 photos with the "
        "default thresholds, bench/grouping.py's library has ~19,000 candidate pairs over "
        "~25,000 photos: about "
        f"{(25_000 * cost['picture_ms']['median'] + 19_000 * cost['agreement_ms']['median']) / 60_000:.0f}"
        " min of one core added to the Matcher's first background search (estimated from "
        "these medians, not run: that library has no pixels). A looser min_cosine finds the "
        "crops and borders (the tuned setting above) but makes more candidate pairs to check.",
        "",
        f"An edit's lowest agreement is {same['min']}, the two shots' highest "
        f"{stereo['max']}: the margin between them is "
        f"{margin(same['min'], stereo['max'])}. Where busque is still exposed: each half has one "
        "scene of two shots (no bursts or video frames seconds apart exist offline here), so "
        "the threshold rests on few hard negatives. Pairs with too little "
        f"texture to tell ({same['no_verdict']} same-photo pairs here: the motion-blurred "
        "clock, the retina) stand on their pHash and embedding alone.",
        "",
        f"## Without the pixel check (chosen the same way: radius {plain_radius}, "
        f"min_cosine {plain_cosine})",
        "",
        *table(unchecked),
        "",
        verdict(unchecked),
        f" Of its {unchecked['paths']['groups']['false_positives']} false positives, "
        f"{unchecked['paths']['groups']['false_positives_stereo']} are pairs of the two shots "
        "of one scene and their edits; the shots' originals are "
        + ("grouped" if stereo_grouped(score, unchecked_setting) else "kept apart")
        + " at this setting.",
        "",
        f"## The service's defaults: radius {defaults.duplicate_radius}, "
        f"min_cosine {defaults.near_duplicate_cosine}, "
        f"min_pixel_agreement {defaults.min_pixel_agreement}",
        "",
        *table(default),
        "",
        verdict(default),
        "",
        f"## The defaults with the hybrid path (min_score {hybrid_min}, chosen on the tuning "
        "half)",
        "",
        *table(default_hybrid),
        "",
        verdict(default_hybrid),
        "",
        f"## One score of both signals? (hybrid, w = {hybrid['w_visual']})",
        "",
        "The service's hybrid score `w * cosine + (1 - w) * (1 - pHash bits / 64)`, the pHash "
        f"at best over the turns, without the pixel check. Its threshold chosen on the tuning "
        f"half ({hybrid['threshold']}) scores precision {hybrid['precision']:.3f}, recall "
        f"{hybrid['recall']:.3f}; the most recall any threshold reaches at precision >= "
        f"{GOAL_PRECISION} on the scored half itself is {hybrid['ceiling_recall']:.3f} (a "
        f"ceiling, chosen on the answers). The scored half's two shots of one scene are "
        f"{views['turned']} pHash bits and cosine {views['cosine']:.3f} apart, closer than "
        "most edits are to their original: no global signal of a whole photo tells them "
        "apart: a hybrid score adds pairs (the section above), it never refuses these. Their "
        f"pixels do: aligned, the two shots agree {views['agreement']}.",
        "",
        *peer_section(data, radius, cosine, agreement),
    ]  # fmt: skip
    harness.publish("duplicates", data, "\n".join(lines), args, plot)


def margin(low, high) -> str:
    return "unknown (a side had no verdict)" if low is None or high is None else f"{low - high:.3f}"


def peer_section(data: dict, radius, cosine, agreement) -> list[str]:
    """The peer's scores on the scored half and busque (the tuned setting) against it."""
    lines = ["## Against the peer: imagededup's PHash", ""]
    if not data["peer"]:
        return [*lines, f"Not run (not installed here): imagededup ({data['peer_not_run']})."]
    mine = data["chosen_on_tune_half"]["paths"]["groups"]
    lines += [
        "imagededup's `PHash().encode_image(image_array=...)` on each decoded JPEG, and a pair "
        f"a duplicate within `max_distance_threshold` bits (its default {IMAGEDEDUP_DEFAULT}, "
        "and the threshold with the most recall at precision >= "
        f"{GOAL_PRECISION} on the tuning half). No turns, no embedding, no pixel check: what a "
        "user of it gets. busque: its groups at the tuned setting (radius "
        f"{radius}, min_cosine {cosine}, min_pixel_agreement {agreement}). busque against it: "
        "photo by photo of the scored half, the difference in recall of the photo's pairs "
        "(busque - imagededup) and in the false positives the photo takes part in (imagededup "
        "- busque); the median difference [a distribution-free interval over the photos]: "
        "**ahead** when all of it is above 0.",
        "",
        "| method | precision | recall | false positives (of them, two shots) | busque's recall "
        "lead [interval] | so busque is | busque's false-positive lead [interval] | so busque is |",
        "|---|---|---|---|---|---|---|---|",
        f"| busque groups (tuned) | {mine['precision']:.3f} | {mine['recall']:.3f} | "
        f"{mine['false_positives']} ({mine['false_positives_stereo']}) | | | | |",
    ]
    for label, got in data["peer"].items():
        lead = got["busque_vs_this"]
        lines.append(
            f"| {label} | {got['precision']:.3f} | {got['recall']:.3f} | "
            f"{got['false_positives']} ({got['false_positives_stereo']}) | "
            f"{harness.show(lead['recall'], 3)} | **{lead['recall']['verdict']}** | "
            f"{harness.show(lead['false_positives'], 1)} | "
            f"**{lead['false_positives']['verdict']}** |"
        )
    names = list(data["peer"])
    lines += [
        "",
        "Recall of the pair (original, edit), by edit:",
        "",
        "| edit | busque groups (tuned) | " + " | ".join(names) + " |",
        "|---|" + "---|" * (len(names) + 1),
    ]
    for edit, got in data["chosen_on_tune_half"]["recall_by_edit"].items():
        cells = [f"{data['peer'][n]['recall_by_edit'][edit]:.2f}" for n in names]
        lines.append(f"| {edit} | {got['groups']:.2f} | " + " | ".join(cells) + " |")
    behind = [
        f"{what} against {label}"
        for label, got in data["peer"].items()
        for what, lead in got["busque_vs_this"].items()
        if lead["verdict"] == "behind"
    ]
    lines += [
        "",
        "Where busque is behind the peer: "
        + (", ".join(behind).replace("_", " ") + "." if behind else "nowhere in this run."),
    ]
    return lines


if __name__ == "__main__":
    main()
