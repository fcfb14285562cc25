# covers: ! pipelines: inverted status, with set -e (no exit), ! on functions and [[ ]]
! false; echo "!false $?"
! true; echo "!true $?"
! ls missing 2>/dev/null | grep -q x; echo "pipe $?"
! [[ a == b ]] && echo "not equal"
set -e
! true
echo "still running under -e"
f() { return 1; }
if ! f; then echo "f failed"; fi
! grep -q nothing /dev/null && echo negated-grep
