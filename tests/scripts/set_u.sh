# covers: set -u: defaults allowed, "$@" with no args allowed, an unset variable aborts with bash's message
set -u
echo "${maybe:-default}"
echo "args: $# $*"
declare -a empty=()
echo "${empty[@]+ok}"
v=1
echo "v=$v"
echo "$not_set"
echo "not reached"
