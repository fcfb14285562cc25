# covers: ${x:?} with no message, inside a function, after output went to a file
f() { echo "in f" > f.txt; : "${1:?}"; }
f
echo never
