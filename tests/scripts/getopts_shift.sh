# covers: getopts option parsing with arguments, OPTIND, unknown options, then shift to operands
# args: -a -b value -c -- rest 'more args'
while getopts ":ab:c" opt; do
    case $opt in
        a) echo "flag a" ;;
        b) echo "b=$OPTARG" ;;
        c) echo "flag c" ;;
        \?) echo "unknown -$OPTARG" ;;
    esac
done
shift $((OPTIND - 1))
echo "operands: $# [$*]"
set -- -x -q
OPTIND=1
while getopts "x" o 2>err.txt; do echo "o=$o"; done
cat err.txt | sed 's/^.*: illegal/illegal/'
