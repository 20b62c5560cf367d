"""Where the stages that open the library's files may run. An S3 library is read from any node;
a folder only on the node of the machine it is on (this driver's): on a cluster of several
nodes those stages are pinned there, so every file is read (elsewhere it would be "No such file
or directory", or another machine's file of the same name). For a cluster's parallelism, put
the library on S3."""

from __future__ import annotations

import logging

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from busque.cluster import alive_nodes

logger = logging.getLogger("busque.backfill")


class NotOnACluster(RuntimeError):
    """A folder library with a driver that is not a node of the cluster (Ray Client)."""


def file_readers(source) -> dict:
    """Ray remote args for the stages that read the library's files."""
    if not source.on_this_machine:
        return {}
    if len(alive_nodes()) <= 1:
        return {}
    node_id = ray.get_runtime_context().get_node_id()
    if node_id is None:
        raise NotOnACluster(
            f"{source.name} is a folder of this machine, which is not a Ray node: run the "
            "backfill on a node of the cluster, or copy the library to S3 (s3://bucket/prefix)"
        )
    logger.info(
        "%s is a folder of this machine: its files are read on this node only (S3 spreads reads "
        "over the cluster)",
        source.name,
    )
    return {"scheduling_strategy": NodeAffinitySchedulingStrategy(node_id=node_id, soft=False)}
