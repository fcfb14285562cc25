# covers: a loop appending to a file with >>, rewriting with sort -o and sed -i, reading back
for i in $(seq 1 20); do
    echo "line $((21 - i))" >> log.txt
done
sort -n -k2 -o sorted.txt log.txt
sed -i 's/line/LINE/' sorted.txt
head -3 sorted.txt
tail -n 2 log.txt
wc -l log.txt sorted.txt
cp sorted.txt backup.txt; echo extra >> backup.txt
cmp sorted.txt backup.txt; echo "cmp $?"
