"""The backfill's report: a summary table, and the progress bars' counts."""

from __future__ import annotations


def summary(report: dict) -> str:
    rows = [
        ("files seen", report["files_seen"]),
        ("skipped (unchanged since the last run)", report["skipped_unchanged"]),
        ("inspected", report["inspected"]),
        ("already stored (alias only)", report["already_stored"]),
        ("new unique images", report["unique_new"]),
        ("uploaded", report.get("uploaded", "-")),
        ("leftovers of killed runs removed", report.get("orphans_removed", "-")),
        ("exact duplicate groups", len(report["exact_duplicate_groups"])),
        ("near duplicate groups (pHash)", len(report["near_duplicate_groups"])),
        (
            "near duplicate groups (embedding)",
            "-"
            if report["near_duplicate_embedding_groups"] is None
            else len(report["near_duplicate_embedding_groups"]),
        ),
        ("near duplicate video groups", len(report["near_duplicate_video_groups"])),
        ("bytes saved by dedupe", report["bytes_saved_by_dedupe"]),
        ("failed", report["failed"]),
        ("seconds", report.get("seconds", "-")),
    ]
    width = max(len(name) for name, _ in rows)
    lines = [f"{name:<{width}}  {value}" for name, value in rows]
    lines += [
        f"  failed: {f['path']}: {f['error']} ({f['message']})" for f in report["failures"][:20]
    ]
    return "\n".join(lines)


def count(bar, name: str, n: int) -> None:
    """Items done and their rate beside a bytes bar's own MB/s and ETA."""
    elapsed = bar.format_dict.get("elapsed") or 0.0
    rate = f"{n / elapsed:.1f}" if elapsed > 0 else "-"
    bar.set_postfix({name: n, f"{name}/s": rate}, refresh=False)
