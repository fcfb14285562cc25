# covers: C-style for loops, nested, with break/continue and external commands in the body
for ((i = 0; i < 5; i++)); do
    printf '%d ' "$i"
done
echo
for ((i = 0; i < 3; i++)); do
    for ((j = 0; j < 3; j++)); do
        (( j == i )) && continue
        echo "$i,$j" >> pairs.txt
    done
done
wc -l < pairs.txt
for ((;;)); do
    n=$((n + 1))
    (( n > 4 )) && break
done
echo "n=$n"
for ((k = 10; k > 0; k -= 4)) do echo "k=$k"; done
