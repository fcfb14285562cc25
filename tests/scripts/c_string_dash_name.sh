# covers: -c 'string' with a name that looks like an option (-x) and flags before -c (-e)
# invoke: c
# flags: -e
# args: -x --second
echo "0=$0 1=$1 #=$#"
ls missing-file
echo never
