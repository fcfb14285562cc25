# covers: -x as a flag: bash's trace lines on stderr (PS4, functions, pipelines, subshells)
# flags: -x
x=1
f() { echo "f $1"; }
f $x > f.txt; cat f.txt
( echo sub )
echo done
