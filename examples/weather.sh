#!/usr/bin/env bash
# The weather-report example: three commands, where the last one reads what the second wrote.
# Under speculation, the appender runs ahead of the writer, is found to have read a stale
# `report`, and is re-run after it; the result is always what bash gives.
cd "$(mktemp -d)" && trap 'rm -r "$PWD"' EXIT
echo "building the weather report"
date +%Y > report
echo sunny >> report
wc -l < report
for city in Paris Lima Oslo; do
    printf '%s: ' "$city" | tr a-z A-Z
    grep -c sunny report
done
