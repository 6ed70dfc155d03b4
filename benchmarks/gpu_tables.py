"""Second half of ``benchmarks/gpu.sh``: the exactness check of the binomial sampler at W4's size and the merged
JSON / Markdown of the per-workload reports.

    python benchmarks/gpu_tables.py OUTDIR [--smoke]

Reads OUTDIR/W*.json (or OUTDIR/smoke.json) and OUTDIR/status.txt (``name exit-status`` lines; 124 = out of
time), writes OUTDIR/exact.json, OUTDIR/gpu.json and OUTDIR/gpu.md. Exit status 1 if the check fails.
"""

from __future__ import annotations

import glob
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from jaxcollapse.bench.reference import check_engine_multinomial, zipf_probs  # noqa: E402
from jaxcollapse.bench.report import markdown, write_json  # noqa: E402
from jaxcollapse.bench.workloads import WORKLOADS  # noqa: E402


def main(argv: list[str]) -> int:
    out, smoke = argv[0], "--smoke" in argv
    w4 = WORKLOADS["W4"]
    vocab, chains = (100, 8) if smoke else (w4.vocab, w4.chains)
    exact = check_engine_multinomial(zipf_probs(vocab), w4.n, chains, seed=0)
    write_json(exact, os.path.join(out, "exact.json"))
    reports = [json.load(open(p)) for p in sorted(glob.glob(os.path.join(out, "W*.json")))
               + glob.glob(os.path.join(out, "smoke.json"))]
    status = open(os.path.join(out, "status.txt")).read().split("\n")
    lines = [f"Exit status per workload (124 = out of its time box): {', '.join(s for s in status if s)}.", "",
             f"Exactness of the binomial sampler, {chains} rows of n = {w4.n:.0e} over vocabulary {vocab}: "
             f"integral {exact['integral']}, non-negative {exact['non_negative']}, rows sum to n "
             f"{exact['rows_sum_to_n']}, calibration z^2 {exact['z2_mean']:.3f} over {exact['z2_tokens']} tokens: "
             f"**{'exact' if exact['exact'] else 'NOT exact'}** ({exact['seconds']:.3f} s for the draw).", ""]
    if reports:
        merged = dict(reports[0], workloads=[w for r in reports for w in r["workloads"]])
        write_json(dict(merged, exactness=exact, status=status), os.path.join(out, "gpu.json"))
        lines.append(markdown(merged))
    with open(os.path.join(out, "gpu.md"), "w") as f:
        f.write("\n".join(lines))
    return 0 if exact["exact"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
