# covers: -s with -u and an argument: the script on stdin runs with nounset, $1 from the command line
# invoke: stdin-s
# flags: -u
# args: given
echo "1=$1"
ls -d .
echo "$undefined_variable"
echo never
