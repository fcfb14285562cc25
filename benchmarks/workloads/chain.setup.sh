#!/bin/bash
# Inputs of chain.sh: `data` (~4 MB of numbers per SCALE) and the chain's seed `s0`.
set -eu
seq 1 $((600000 * ${SCALE:-1})) > data
echo seed > s0
