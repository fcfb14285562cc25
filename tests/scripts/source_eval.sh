# covers: source/. of a file defining functions and variables, eval of built strings, sourced args
printf 'LIBVAR=fromlib\nlibfn() { echo "libfn $*"; }\necho "sourced with $# args: $*"\n' > lib.sh
source ./lib.sh a b
. lib.sh
echo "$LIBVAR"; libfn x y
cmd='echo evaluated; ls missing 2>/dev/null || echo "eval fallback"'
eval "$cmd"
for v in one two; do eval "var_$v=\$v-value"; done
echo "$var_one $var_two"
eval 'f() { echo "eval-defined $1"; }'; f z
eval "exit 0; echo no" 
echo never
