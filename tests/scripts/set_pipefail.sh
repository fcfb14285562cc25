# covers: set -o pipefail: status of the rightmost failing command; with set -e; pipefail off again
set -o pipefail
false | true; echo "pf $?"
true | (exit 3) | true; echo "pf $?"
ls missing 2>/dev/null | wc -l; echo "pf $?"
set +o pipefail
false | true; echo "nopf $?"
set -eo pipefail
seq 3 | grep -q nine | cat
echo unreachable
