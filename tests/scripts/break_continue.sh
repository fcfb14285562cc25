# covers: break, continue, break 2, continue 2 in for/while/until loops with external commands
for i in 1 2 3 4 5; do
    (( i == 2 )) && continue
    (( i == 4 )) && break
    echo "i=$i"
done
for a in x y z; do
    for b in 1 2 3; do
        [[ $b == 2 && $a == y ]] && continue 2
        [[ $a == z ]] && break 2
        echo "$a$b" >> pairs.txt
    done
done
cat pairs.txt
n=0
while true; do
    n=$((n + 1))
    [ "$n" -lt 3 ] && continue
    echo "while n=$n"
    break
done
until [ "$n" -ge 6 ]; do n=$((n + 1)); [ $n -eq 5 ] && break; done
echo "until n=$n"
