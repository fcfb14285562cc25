# covers: appends (>> and tee -a) interleaved with readers: each wc/tail sees exactly the lines before it
for i in 1 2 3 4 5; do
    /bin/echo "entry $i" >> log.txt
    wc -l < log.txt
done
/bin/echo tail | tee -a log.txt > /dev/null
tail -n 2 log.txt
seq 3 | tee -a log.txt | wc -l
wc -l < log.txt
