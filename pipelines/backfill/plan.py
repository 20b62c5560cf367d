"""The backfill's plan: which files of the library to look at, under which names."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from fnmatch import fnmatchcase
from pathlib import Path

from busque.media.library import LibraryFile, path_text


def missing_folder(root: str | Path) -> bool:
    """A local library root that is not a folder (an S3 prefix is not checked)."""
    return not str(root).startswith("s3://") and not Path(root).is_dir()


def text_paths(
    files: list[LibraryFile],
) -> tuple[list[LibraryFile], dict[str, str], list[dict]]:
    """The files under their text paths (path_text: what the catalog, its synced paths and the
    report hold), the real path of each renamed file (to read it by), and a failure for each
    renamed file whose text path another file has."""
    names = {f.path for f in files}
    out, real, clashes = [], {}, []
    for f in files:
        text = path_text(f.path)
        if text == f.path:
            out.append(f)
        elif text in names or text in real:
            message = "its name is not UTF-8 and reads the same as another file's"
            clashes.append({"path": text, "error": "name_clash", "message": message})
        else:
            real[text] = f.path
            out.append(replace(f, path=text))
    return out, real, clashes


def excluded(path: str, patterns: Sequence[str]) -> bool:
    """A library path (relative, "/"-separated) one of the patterns excludes: the whole path,
    or any of its parts (a folder such as "@eaDir" anywhere), matched case-sensitively."""
    parts = path.split("/")
    return any(
        fnmatchcase(path, pattern) or any(fnmatchcase(part, pattern) for part in parts)
        for pattern in patterns
    )


def allowed_source(source: str, roots: Sequence[str]) -> bool:
    """Whether a `backfill` job may read `source`: a folder inside one of the configured local
    roots (after resolving links), or an s3:// prefix inside a configured one."""
    if ".." in source.split("/"):
        return False
    if source.startswith("s3://"):
        inside = source.rstrip("/") + "/"
        return any(
            inside.startswith(root.rstrip("/") + "/") for root in roots if root.startswith("s3://")
        )
    if not Path(source).is_absolute():
        return False
    real = Path(source).resolve()
    return any(
        real.is_relative_to(Path(root).resolve()) for root in roots if not root.startswith("s3://")
    )
