# covers: set -e around external commands in &&/|| lists, in functions called from if, and as the last failure
set -e
ls missing 2>/dev/null && /bin/echo no || /bin/echo "or-branch"
f() { ls missing 2>/dev/null; /bin/echo "f continues (errexit ignored in if condition)"; }
if f; then /bin/echo "f ok"; fi
ls missing 2>/dev/null || true
/bin/echo before
grep -q nothing /dev/null
/bin/echo never
