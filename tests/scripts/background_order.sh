# covers: several background pipelines writing separate files, then combined in order after wait
for i in 3 1 2; do
    { seq $i | sed "s/^/$i:/" > part$i.txt; } &
done
wait
cat part1.txt part2.txt part3.txt
sort -t: -k2 part*.txt > merged.txt
wc -l merged.txt
