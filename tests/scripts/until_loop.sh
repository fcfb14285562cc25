# covers: until and while loops with external conditions (test, grep) and files changed in the body
n=0
until [ -f done.flag ]; do
    n=$((n + 1))
    echo "$n" >> counter.txt
    [ "$n" -ge 3 ] && touch done.flag
done
cat counter.txt
while ! grep -q 5 counter.txt; do
    echo $(( $(wc -l < counter.txt) + 1 )) >> counter.txt
done
tail -1 counter.txt
i=0; while (( i < 3 )); do echo "i=$i"; ((i++)); done
