"""Run the benchmark suite: every script in bench/, one after another, each in its own process.

    python -m bench list               which scripts there are, and which have a quick mode
    python -m bench all --quick        every script with a quick mode, in it (minutes; writes
                                       nothing: quick figures never replace real ones)
    python -m bench all                every script with a quick mode, in full (writes
                                       bench/results/; run it on a quiet machine)
    python -m bench phash phash_lookup the named scripts (full unless --quick)

A script has a quick mode when it takes --quick (seconds to a minute on tiny data, the mode
tests/test_bench_smoke.py runs so none rots). Scripts without one are listed as not yet
supporting it and skipped by `all`. A script that needs what this machine may lack says so in a
module-level line, `NEEDS = "cluster"` (or "gpu"): `list` shows "needs a cluster" and `all`
skips it; name it to run it. Exits non-zero when any script run fails, after running the rest.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
NOT_SCRIPTS = {"__init__", "__main__", "harness"}
# A script's module-level `NEEDS = "cluster"`: what it needs that a plain machine lacks.
NEEDS = re.compile(r'^NEEDS = "([^"]+)"', re.MULTILINE)


def described() -> dict[str, tuple[bool, str | None]]:
    """{name: (has a quick mode, what it needs or None)} of every benchmark script, read as
    text (nothing is imported)."""
    found = {}
    for path in sorted(BENCH.glob("*.py")):
        if path.stem not in NOT_SCRIPTS:
            text = path.read_text()
            needs = NEEDS.search(text)
            found[path.stem] = ('"--quick"' in text, needs.group(1) if needs else None)
    return found


def shown(quick: bool, needs: str | None) -> str:
    """How `list` describes a script: its quick mode, and what it needs."""
    mode = "--quick" if quick else "no quick mode yet"
    return mode if needs is None else f"{mode}, needs a {needs}"


def run(name: str, quick: bool) -> tuple[int, float]:
    command = [sys.executable, f"bench/{name}.py"] + (["--quick", "--no-write"] if quick else [])
    print(f"==> {' '.join(command[1:])}", flush=True)
    started = time.perf_counter()
    code = subprocess.run(command, cwd=ROOT).returncode
    return code, time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    first, _, rest = __doc__.partition("\n\n")
    cli = argparse.ArgumentParser(
        prog="python -m bench",
        description=first,
        epilog=rest,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cli.add_argument("what", nargs="+", help="list, all, or script names (bench/NAME.py)")
    cli.add_argument("--quick", action="store_true", help="each script's quick mode; no writes")
    args = cli.parse_args(argv)
    known = described()
    if args.what == ["list"]:
        for name, (quick, needs) in known.items():
            print(f"{name:16} {shown(quick, needs)}")
        return 0
    if args.what == ["all"]:
        chosen = [name for name, (quick, needs) in known.items() if quick and needs is None]
        skipped = [name for name, (quick, _) in known.items() if not quick]
        needing = [f"{name} (a {needs})" for name, (_, needs) in known.items() if needs]
        print(f"not yet supporting --quick (skipped): {', '.join(skipped)}", flush=True)
        if needing:
            print(f"needing what is named (skipped): {', '.join(needing)}", flush=True)
    else:
        unknown = [name for name in args.what if name not in known]
        if unknown:
            cli.error(f"no such benchmark: {', '.join(unknown)} (python -m bench list)")
        chosen = args.what
    outcomes = {name: run(name, args.quick) for name in chosen}
    print("\n| benchmark | exit | seconds |\n|---|---:|---:|")
    for name, (code, seconds) in outcomes.items():
        print(f"| {name} | {code} | {seconds:.0f} |")
    return int(any(code for code, _ in outcomes.values()))


if __name__ == "__main__":
    sys.exit(main())
