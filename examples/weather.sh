#!/usr/bin/env bash
# The weather-report example: a slow `date` writes the report, an appender adds to it, `wc`
# reads it. Under speculation the appender (an external echo, so that it is a command hs can
# run ahead) and the reader run while the writer is still at work, are found to have seen a
# stale `report`, and are re-run after it: `hs --report r.json examples/weather.sh` shows them
# twice. (The writer redirects inside `sh -c`: had it written `... > report` itself, hs would
# have read the path in its words and held the others back instead.) The output is always
# what bash gives.
cd "$(mktemp -d)" && trap 'rm -r "$PWD"' EXIT
echo "building the weather report"
sh -c 'sleep 0.3; date +%Y > report'
/bin/echo sunny >> report
wc -l < report
for city in Paris Lima Oslo; do
    printf '%s: ' "$city" | tr a-z A-Z
    grep -c sunny report
done
