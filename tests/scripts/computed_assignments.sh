# covers: assignments prediction computes ahead of the shell (literals, variables, positional parameters, $(basename …) quoted, unquoted and with a suffix, $(dirname …)), values it must not guess (blanks and globs in an unquoted argument), and a function named basename defined midway
set -- in out
mkdir -p "$1" "$2" "$1/sub dir"
for n in a b.txt 'c d.txt' 'e*' f.txt; do printf '%s\n' "$n" > "$1/$n"; done
for f in "$1"/*; do
    name=$(basename $f)
    base="$(basename "$f" .txt)"
    dir=$(dirname "$f")/
    out=$2/$base.copy
    { sleep 0.02; cat "$f"; } | tr a-z A-Z > "$out"
    echo "$name|$base|$dir" | sort
done
basename() { echo "fn:$1"; }
for f in in/a in/f.txt; do
    x=$(basename $f)
    { sleep 0.02; echo "$x"; } | cat
done
unset -f basename
for f in in/a/ //x/y// /; do
    d=$(dirname $f) b=$(basename $f)
    { sleep 0.02; echo "$d $b"; } | cat
done
ls out | sort
