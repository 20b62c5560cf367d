"""Where a Matcher searches its vector index: on the CPU (the default, the path the tests cover),
or from a copy on the GPU (`index.device: cuda`). The copy needs faiss's GPU build, which
replaces faiss-cpu on a GPU node (both install the `faiss` package; see deploy/install-gpu-faiss.sh).

FAISS has GPU versions of the flat and IVF indices only: an HNSW index is searched on the CPU
(choose `index.vector_index: flat` or `ivf` with `cuda`). A GPU search returns at most
GPU_MAX_K results a query; larger searches use the CPU index."""

from __future__ import annotations

import functools

import faiss

DEVICES = ("cpu", "cuda")
GPU_KINDS = ("flat", "ivf")
GPU_MAX_K = 2048  # faiss's limit for k (and nprobe) on the GPU


def gpu_unavailable_reason() -> str | None:
    """None when this process can put an index on a GPU, else why not."""
    if not hasattr(faiss, "StandardGpuResources"):
        return (
            "the installed faiss is the CPU build (faiss-cpu): on a GPU node run "
            "deploy/install-gpu-faiss.sh, which puts faiss-gpu-cu12 in its place"
        )
    if faiss.get_num_gpus() < 1:
        return "faiss sees no GPU here (does the replica ask Ray for num_gpus?)"
    return None


def check_device(device: str) -> None:
    """Raises with what to do when the index cannot live on `device` in this process."""
    if device not in DEVICES:
        raise ValueError(f"index device must be one of {DEVICES}, not {device!r}")
    if device == "cuda" and (reason := gpu_unavailable_reason()):
        raise RuntimeError(f"index.device is cuda, but {reason}")


@functools.cache
def _gpu_resources():
    # One per process: each StandardGpuResources reserves scratch memory on the GPU.
    return faiss.StandardGpuResources()


def to_gpu(index: faiss.Index, nprobe: int) -> faiss.Index:
    """A copy of a CPU index on this process's GPU (Ray's CUDA_VISIBLE_DEVICES makes it 0)."""
    copy = faiss.index_cpu_to_gpu(_gpu_resources(), 0, index)
    if isinstance(faiss.downcast_index(index), faiss.IndexIVF):
        faiss.GpuParameterSpace().set_index_parameter(copy, "nprobe", min(nprobe, GPU_MAX_K))
    return copy
