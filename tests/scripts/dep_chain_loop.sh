# covers: a 100-step chain where each external command reads the previous one's output file
/bin/echo 0 > n0
for i in $(seq 1 100); do
    prev=$((i - 1))
    awk '{ print $1 + 1 }' "n$prev" > "n$i"
    rm "n$prev"
done
cat n100
ls
