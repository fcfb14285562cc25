# covers: &> and &>> redirections, 2>&1 order, >| and 2>/dev/null, redirections on compound commands
ls . missing &> both.txt; echo "ls $?"
echo again &>> both.txt
cat both.txt
{ echo a; echo b >&2; } > out.txt 2>&1
cat out.txt
{ echo c >&2; } 2>&1 > /dev/null | cat
ls missing 2>/dev/null || echo silent
echo clob >| clob.txt
for i in 1 2; do echo "loop $i"; done > loop.txt
cat loop.txt
if true; then echo "if body" >&2; fi 2> iferr.txt
cat iferr.txt
