"""Run the benchmark suite: every script in bench/, one after another, each in its own process.

    python -m bench list               which scripts there are, and which have a quick mode
    python -m bench all --quick        every script with a quick mode, in it (minutes; writes
                                       nothing: quick figures never replace real ones)
    python -m bench all                every script with a quick mode, in full (writes
                                       bench/results/; run it on a quiet machine)
    python -m bench phash phash_lookup the named scripts (full unless --quick)

A script has a quick mode when it takes --quick (seconds to a minute on tiny data, the mode
tests/test_bench_smoke.py runs so none rots). Scripts without one are listed as not yet
supporting it and skipped by `all`: several need a cluster or minutes of a running service. A
script that needs hardware says so at module level, `NEEDS = "gpu"` (read as text, like
"--quick"): `list` shows "needs a GPU" and `all` skips it; named, it runs (and says why it
cannot where the hardware is missing). Exits non-zero when any script run fails, after running
the rest.
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
NEEDS = re.compile(r'^NEEDS = "(\w+)"', re.MULTILINE)
HARDWARE = {"gpu": "needs a GPU"}


def scripts() -> dict[str, bool]:
    """{name: has a quick mode} of every benchmark script, by name."""
    found = {}
    for path in sorted(BENCH.glob("*.py")):
        if path.stem not in NOT_SCRIPTS:
            found[path.stem] = '"--quick"' in path.read_text()
    return found


def needs(name: str) -> str | None:
    """What hardware a script declares it needs (`NEEDS = "gpu"` at module level), or None."""
    found = NEEDS.search((BENCH / f"{name}.py").read_text())
    return found.group(1) if found else None


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
    known = scripts()
    if args.what == ["list"]:
        for name, quick in known.items():
            need = needs(name)
            mode = HARDWARE.get(need, f"needs {need}") if need else None
            print(f"{name:16} {mode or ('--quick' if quick else 'no quick mode yet')}")
        return 0
    if args.what == ["all"]:
        hardware = {name: need for name in known if (need := needs(name))}
        chosen = [name for name, quick in known.items() if quick and name not in hardware]
        skipped = [name for name, quick in known.items() if not quick and name not in hardware]
        print(f"not yet supporting --quick (skipped): {', '.join(skipped)}", flush=True)
        for need in sorted(set(hardware.values())):
            names = ", ".join(name for name, n in hardware.items() if n == need)
            print(f"{HARDWARE.get(need, 'needs ' + need)} (skipped): {names}", flush=True)
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
