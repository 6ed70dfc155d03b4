#!/usr/bin/env bash
# The GPU table: every workload W1-W6 at full size on one GPU, in under 8 minutes, plus the exactness check of
# the binomial sampler at W4's size (vocabulary 50,000, n = 10^9).
#
#   benchmarks/gpu.sh OUTDIR           # on a GPU node with `pip install "jaxcollapse[cuda12]"` done; installs nothing
#   benchmarks/gpu.sh OUTDIR --smoke [W1,W3]   # any machine (CPU): tiny sizes (2 chains x 2 generations,
#                                              # the check at vocabulary 100), the same files; all workloads
#                                              # unless named
#
# Writes OUTDIR/W1.json ... W6.json (one `jaxcollapse bench` report each), OUTDIR/exact.json, and the merged
# OUTDIR/gpu.json and OUTDIR/gpu.md (one report, its Markdown tables, the exactness check and the exit status
# of every workload). Each workload runs in its own process under `timeout` (its time box below); one that runs
# out of time is reported as such and the others still run. Reference (a) NumPy runs on the CPU in the same
# process; (b) is left out (a Python loop over chains, minutes per workload at full size).
set -u
if [ $# -lt 1 ]; then echo "usage: $0 OUTDIR [--smoke]" >&2; exit 2; fi
out=$1; smoke=${2:-}; smoke_workloads=${3:-W1,W2,W3,W4,W5,W6}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
python=${PYTHON:-python}

if [ "$smoke" = "--smoke" ]; then
    # one process for all workloads: 2 chains x 2 generations, one timed run, no micro timings
    timeout 300 "$python" "$here/bench.py" --workloads "$smoke_workloads" --chains 2 --generations 2 \
        --repeats 1 --refs a --budget 0.2 --no-micro --rng-size 4096 --quiet --json "$out/smoke.json" > /dev/null
    echo "smoke $?" > "$out/status.txt"
    exec "$python" "$here/gpu_tables.py" "$out" --smoke
fi

# seconds per workload (sum 420 s) and the exactness check (30 s): under 8 minutes with start-up
declare -A box=([W1]=50 [W2]=80 [W3]=60 [W4]=90 [W5]=80 [W6]=60)
: > "$out/status.txt"
for w in W1 W2 W3 W4 W5 W6; do
    timeout "${box[$w]}" "$python" "$here/bench.py" --workloads "$w" --refs a,c --repeats 3 --budget 5 \
        --rng-size $((1 << 26)) --quiet --json "$out/$w.json" > /dev/null
    echo "$w $?" >> "$out/status.txt"
done
exec timeout 60 "$python" "$here/gpu_tables.py" "$out"
