# covers: external commands whose words depend on variables changed in between (loop counters, reads, cd, export)
n=0
for i in 1 2 3 4; do
    n=$((n + i))
    /bin/echo "$n" > "sum_$i.txt"
done
cat sum_*.txt
mkdir -p d1 d2
cd d1; /bin/echo here > where.txt; cd ../d2; /bin/echo here > where.txt; cd ..
find . -name where.txt | sort
export MODE=first; sh -c 'echo "$MODE"'
MODE=second; sh -c 'echo "$MODE"'
umask 077; touch private; umask 022; touch public
stat -c '%a %n' private public
set -- x y; /bin/echo "$@"; shift; /bin/echo "$@"
