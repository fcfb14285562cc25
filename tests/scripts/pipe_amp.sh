# covers: |& (stdout and stderr into a pipe), with external commands and functions
ls missing-file |& sed 's/^ls: //'
{ echo out; echo err >&2; } |& sort
f() { echo fout; echo ferr >&2; return 3; }
f |& cat
echo "status ${PIPESTATUS[*]}"
bash -c 'echo e1 >&2; echo o1' |& tr a-z A-Z
