# covers: f() functions: arguments, $#, return status, locals, functions calling external commands
add() { echo $(( $1 + $2 )); }
count() { echo "$# args: $*"; }
is_even() { return $(( $1 % 2 )); }
writer() { local f=$1; shift; printf '%s\n' "$@" > "$f"; }
add 2 3
count a "b c" d
for n in 1 2 3 4; do
    if is_even $n; then echo "$n even"; else echo "$n odd"; fi
done
writer out.txt x y z
sort -r out.txt
f() { echo "in f: $1"; g "$@"; }
g() { echo "in g: $#"; }
f one two
echo "status $?"
