#!/bin/bash
# Embarrassingly parallel: one independent sort | uniq -c per input file (16 files). Each
# iteration reads only its own file and writes its own output, so the ideal speedup is the
# number of cores. `sort --parallel=1` keeps each sort on one thread, as it would be in any
# larger batch, so that bash does not get a share of the parallelism from sort itself.
for f in *.txt; do
    sort --parallel=1 "$f" | uniq -c > "$f.out"
done
wc -l *.out | tail -n 1
