"""python -m pipelines.reindex --tenant TENANT --collection NAME [--recompute]"""

import argparse

from busque.config import Settings
from busque.runtime import Runtime
from pipelines.reindex.command import DESCRIPTION, add_arguments, run

parser = argparse.ArgumentParser(prog="python -m pipelines.reindex", description=DESCRIPTION)
add_arguments(parser)
raise SystemExit(run(Runtime(Settings()), parser.parse_args()))
