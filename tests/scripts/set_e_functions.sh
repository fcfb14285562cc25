# covers: set -e inside functions, subshells, command substitution and the trap on EXIT
set -e
trap 'echo "exiting with $?"' EXIT
f() { echo in-f; false; echo after-false-in-f; }
f || echo "f failed"
(echo sub; exit 3) || echo "subshell rc $?"
x=$(echo fine)
echo "x=$x"
g() { grep -q needle /dev/null; }
g
echo unreachable
