"""Line coverage of casstore per package, from coverage.py's JSON report (`make cov`).

Usage: python .ci/coverage_by_package.py coverage.json
Prints one row per package (casstore/objects, casstore/remote, ...; the modules directly
under casstore/ as "casstore"), then the total. Informative only: no threshold is enforced.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict
from pathlib import PurePosixPath


def by_package(report: dict) -> dict[str, tuple[int, int]]:
    """package -> (statements, covered statements)."""
    out: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for name, f in report["files"].items():
        parts = PurePosixPath(name.replace("\\", "/")).parts
        i = parts.index("casstore") if "casstore" in parts else 0
        package = "/".join(parts[i:-1]) or "casstore"
        s = f["summary"]
        out[package][0] += s["num_statements"]
        out[package][1] += s["covered_lines"]
    return {k: (v[0], v[1]) for k, v in out.items()}


def main() -> None:
    with open(sys.argv[1] if len(sys.argv) > 1 else "coverage.json") as f:
        rows = by_package(json.load(f))
    width = max(len(k) for k in rows) + 2
    print(f"{'package':<{width}}{'statements':>11}{'covered':>9}{'%':>7}")
    total = [0, 0]
    for package, (n, c) in sorted(rows.items()):
        total[0] += n
        total[1] += c
        print(f"{package:<{width}}{n:>11}{c:>9}{100 * c / max(n, 1):>6.1f}%")
    print(f"{'total':<{width}}{total[0]:>11}{total[1]:>9}{100 * total[1] / max(total[0], 1):>6.1f}%")


if __name__ == "__main__":
    main()
