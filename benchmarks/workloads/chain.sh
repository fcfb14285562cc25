#!/bin/bash
# A truly sequential chain: 20 CPU-bound steps, each reading the file the previous step wrote
# (read-after-write), so the critical path is the whole run and the ideal speedup is 1; hs
# should stay close to bash here (speculation cannot help, and must not hurt much).
for i in $(seq 1 20); do
    cat "s$((i - 1))" data | sha256sum > "s$i"
done
cat s20
