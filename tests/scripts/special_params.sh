# covers: $0, $@, $*, $#, shift, set --, arguments with spaces and empty arguments
# args: one 'two words' '' last
echo "0=${0##*/} #=$#"
printf '<%s>' "$@"; echo
printf '<%s>' "$*"; echo
IFS=,; echo "$*"; unset IFS
shift
echo "after shift: $# first=$1"
shift 2
echo "after shift 2: $* ($#)"
set -- x y z
echo "$# ${@: -1} ${@:2:1}"
f() { echo "fn: $# $1 $0"; }
f a b
[[ $0 == /* ]] && echo "absolute \$0"
