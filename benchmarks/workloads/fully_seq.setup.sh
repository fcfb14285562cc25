#!/bin/bash
# Input of fully_seq.sh: `data`, ~8.5 MB of numbers per SCALE (deterministic, no network).
set -eu
seq 1 $((1200000 * ${SCALE:-1})) > data
