"""The backfill's plan: which files of the library to look at, under which names."""

from __future__ import annotations

from dataclasses import replace
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
