"""What a 3D job stores: the mesh as GLB (what web viewers and most 3D tools open) and PLY (what
Shap-E's own tools write), both with vertex colours, and a PNG preview of four views."""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

PREVIEW_VIEWS = (0, 5, 10, 15)  # of the 20 views Shap-E's renderer pans around the object


def _trimesh(mesh: Any):
    """A diffusers MeshDecoderOutput (verts, faces, vertex_channels R/G/B in 0..1) as trimesh's."""
    import trimesh

    colours = np.stack([mesh.vertex_channels[c].detach().cpu().numpy() for c in "RGB"], axis=1)
    rgba = np.concatenate(
        [np.clip(colours * 255 + 0.5, 0, 255), np.full((len(colours), 1), 255)], axis=1
    ).astype(np.uint8)
    return trimesh.Trimesh(
        vertices=mesh.verts.detach().cpu().numpy().astype(np.float32),
        faces=mesh.faces.detach().cpu().numpy(),
        vertex_colors=rgba,
        process=False,
    )


def export(mesh: Any) -> tuple[dict[str, bytes], dict[str, Any]]:
    """The files of a generated mesh ({"mesh.glb", "mesh.ply"}) and facts about it."""
    shape = _trimesh(mesh)
    files = {"mesh.glb": shape.export(file_type="glb"), "mesh.ply": shape.export(file_type="ply")}
    facts = {
        "vertices": len(shape.vertices),
        "faces": len(shape.faces),
        "watertight": bool(shape.is_watertight),
        "bounds": shape.bounds.round(4).tolist(),
    }
    return files, facts


def preview_sheet(views: Any) -> Image.Image:
    """Four of the renderer's views (a (20, S, S, 3) tensor in 0..1), two by two."""
    frames = views.detach().float().cpu().numpy()
    picked = [frames[i % len(frames)] for i in PREVIEW_VIEWS]
    size = picked[0].shape[0]
    sheet = Image.new("RGB", (2 * size, 2 * size))
    for n, frame in enumerate(picked):
        tile = Image.fromarray((np.clip(frame, 0, 1) * 255 + 0.5).astype(np.uint8))
        sheet.paste(tile, ((n % 2) * size, (n // 2) * size))
    return sheet
