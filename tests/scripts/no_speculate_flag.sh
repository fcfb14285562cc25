# covers: hs --no-speculate: dependent external commands in sequence, output identical to bash
# hs-flags: --no-speculate
echo 1 > chain.txt
for i in 2 3 4 5; do
    prev=$(tail -1 chain.txt)
    echo $((prev * i)) >> chain.txt
done
cat chain.txt
grep -c . chain.txt
