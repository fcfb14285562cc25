# covers: -c 'string' name args: $0 is name, $1.. the args, multi-line string, exit status
# invoke: c
# args: myname first 'sec ond'
echo "0=$0 1=$1 2=$2 #=$#"
for a in "$@"; do echo "arg [$a]"; done
echo "$BASH_SOURCE" "$LINENO"
ls missing
exit 3
