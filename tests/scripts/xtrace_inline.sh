# covers: set -x / set +x inside the script: trace lines for external commands, loops and pipelines
echo quiet
set -x
ls -d .
for i in 1 2; do echo "$i" > "f$i"; done
cat f1 f2
set +x
echo quiet again
