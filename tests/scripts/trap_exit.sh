# covers: trap on EXIT running at normal end, seeing $? and cleaning up files
trap 'echo "exit trap, status $?"; rm -f tmp.lock' EXIT
touch tmp.lock keep.txt
ls
echo working
false
