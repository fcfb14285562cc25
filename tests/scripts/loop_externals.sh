# covers: a loop of 100 independent external commands writing files, then reading them all back
for i in $(seq 1 100); do
    echo "$i squared is $((i * i))" > "out_$i.txt"
done
cat out_*.txt | sort -t' ' -k1,1n | md5sum
ls | wc -l
for f in out_1*.txt; do wc -c < "$f"; done | sort -n | uniq -c
rm out_5*.txt
ls | wc -l
