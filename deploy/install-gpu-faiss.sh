#!/bin/sh
# FAISS's GPU build on a GPU node, for Matchers that search on the GPU (BUSQUE_INDEX__DEVICE=cuda).
# Run after `pip install -r deploy/requirements-gpu.txt`: busque depends on faiss-cpu, and
# faiss-gpu-cu12 installs the same `faiss` package, so the CPU build goes first (with both,
# faiss-cpu's _swigfaiss.abi3.so shadows the GPU one and `import faiss` breaks). A later pip
# install that pulls faiss-cpu back in undoes this: run it again then.
set -eu
pip uninstall -y faiss-cpu
pip install --no-cache-dir faiss-gpu-cu12==1.14.1.post1
