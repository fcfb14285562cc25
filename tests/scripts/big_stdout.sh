# covers: a 20 MB stdout through a pipeline and from a loop of external commands
yes 'the quick brown fox jumps over the lazy dog 0123456789' | head -c 20000000
for i in 1 2 3; do seq 1 1000; done
