# covers: process substitution <( ) and >( ), with diff, paste, while-read and tee
printf '1\n2\n3\n' > a.txt
printf '1\n3\n4\n' > b.txt
diff <(sort a.txt) <(sort b.txt); echo "diff status $?"
paste <(seq 3) <(seq 4 6)
while read -r line; do echo "got $line"; done < <(printf 'x\ny\n')
seq 5 > nums.txt
tee >(wc -l > count.txt) < nums.txt > /dev/null
wait $!
cat count.txt
cat <(echo inner) <(echo second)
