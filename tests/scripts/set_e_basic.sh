# covers: set -e: failures in if/while/&&/|| do not exit, a plain failing external command does
set -e
if false; then echo no; fi
false || echo "or-branch"
false && echo no
! true
while false; do :; done
echo "still here"
ls missing-file
echo "not reached"
