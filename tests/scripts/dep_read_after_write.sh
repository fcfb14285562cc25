# covers: read-after-write between external commands: write, read, overwrite, read again (speculation must notice)
/bin/echo one > f.txt
cat f.txt
sed -i 's/one/two/' f.txt
cat f.txt
cp f.txt g.txt
/bin/echo three > f.txt
cat f.txt g.txt
sort -r f.txt g.txt > h.txt
cat h.txt
