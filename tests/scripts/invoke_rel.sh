# covers: script given by relative path (bash script.sh): $0, BASH_SOURCE, error message prefix
# invoke: rel
# args: x
echo "0=$0 src=${BASH_SOURCE[0]} 1=$1"
not_a_command
cat missing
