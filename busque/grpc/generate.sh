#!/usr/bin/env bash
# Regenerates the committed gRPC code (*_pb2*.py, .pyi) from the protos in busque/grpc/.
# Needs grpcio-tools. Usage: busque/grpc/generate.sh  (PYTHON=... to pick the interpreter)
#
# protoc runs from the repository root with the protos at busque/grpc/, so the generated
# message classes live in modules "busque.grpc.<name>_pb2". That matters: Ray Serve's gRPC
# proxy pickles the request protos to send them to the replica, and pickle looks the class up
# by that module name.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
PYTHON="${PYTHON:-python}"
for proto in busque_jobs profile_photo_job; do
  "$PYTHON" -m grpc_tools.protoc \
    --proto_path=. \
    --python_out=. \
    --pyi_out=. \
    --grpc_python_out=. \
    "busque/grpc/$proto.proto"
  # Make sure the stub imports its messages as a package import (a no-op when protoc already
  # wrote "from busque.grpc import ..._pb2 as ...").
  sed -i.bak -E "s/^import ${proto}_pb2 as /from busque.grpc import ${proto}_pb2 as /" \
    "busque/grpc/${proto}_pb2_grpc.py"
  rm -f "busque/grpc/${proto}_pb2_grpc.py.bak"
done
