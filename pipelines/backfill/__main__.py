"""python -m pipelines.backfill ROOT --tenant TENANT [...] (e.g. under `ray job submit`)"""

import argparse

from busque.config import Settings
from busque.runtime import Runtime
from pipelines.backfill.command import DESCRIPTION, add_arguments, run

parser = argparse.ArgumentParser(prog="python -m pipelines.backfill", description=DESCRIPTION)
add_arguments(parser)
raise SystemExit(run(Runtime(Settings()), parser.parse_args()))
