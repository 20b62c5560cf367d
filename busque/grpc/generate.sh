#!/usr/bin/env bash
# Regenerates the committed gRPC code (busque_jobs_pb2*.py, .pyi) from busque_jobs.proto.
# Needs grpcio-tools. Usage: busque/grpc/generate.sh  (PYTHON=... to pick the interpreter)
#
# protoc runs from the repository root with the proto at busque/grpc/, so the generated
# message classes live in module "busque.grpc.busque_jobs_pb2". That matters: Ray Serve's
# gRPC proxy pickles the request protos to send them to the replica, and pickle looks the
# class up by that module name.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
PYTHON="${PYTHON:-python}"
"$PYTHON" -m grpc_tools.protoc \
  --proto_path=. \
  --python_out=. \
  --pyi_out=. \
  --grpc_python_out=. \
  busque/grpc/busque_jobs.proto
# Make sure the stub imports its messages as a package import (a no-op when protoc already
# wrote "from busque.grpc import busque_jobs_pb2 as ...").
sed -i.bak -E 's/^import busque_jobs_pb2 as /from busque.grpc import busque_jobs_pb2 as /' \
  busque/grpc/busque_jobs_pb2_grpc.py
rm -f busque/grpc/busque_jobs_pb2_grpc.py.bak
