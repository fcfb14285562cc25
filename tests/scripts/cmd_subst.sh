# covers: command substitution: $( ), backquotes, nesting, trailing newlines stripped, status, in assignments
a=$(echo hello)
b=`echo world`
echo "$a $b"
c=$(printf 'x\n\n\n'); echo "[$c]"
d=$(echo "$(echo "$(echo deep)")"); echo "$d"
e=$(exit 3); echo "status $?"
f=$(ls missing 2>&1 >/dev/null | wc -l); echo "f=$f"
echo "count: $(seq 10 | wc -l | tr -d ' ')"
g=$(cd /; pwd); echo "g=$g pwd unchanged: ${PWD##*/}"
lines=$(printf 'l1\nl2\n'); echo "$lines" | wc -l
echo "$(echo 'quoted   spaces')" $(echo 'unquoted   spaces')
h=$(cat <<< "from herestring"); echo "$h"
