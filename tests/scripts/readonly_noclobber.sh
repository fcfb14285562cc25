# covers: readonly variables (error message, status), set -C noclobber with > and >|
readonly R=fixed
R=other
echo "R=$R status $?"
echo first > f.txt
set -C
echo second > f.txt
echo "clobber status $?"
echo third >| f.txt
set +C
cat f.txt
unset R; echo "unset status $?"
