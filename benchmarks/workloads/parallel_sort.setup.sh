#!/bin/bash
# Inputs of parallel_sort.sh: 16 files f01.txt..f16.txt of 100,000 words per SCALE each, drawn
# from a 20,000-word vocabulary by a fixed linear congruential generator (deterministic).
set -eu
n=$((100000 * ${SCALE:-1}))
for i in $(seq -w 1 16); do
    awk -v seed="$i" -v n="$n" 'BEGIN {
        s = seed * 7919
        for (k = 0; k < n; k++) { s = (s * 1103515245 + 12345) % 2147483648; printf "w%d\n", s % 20000 }
    }' > "f$i.txt"
done
