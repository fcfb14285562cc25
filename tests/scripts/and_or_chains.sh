# covers: && and || chains mixing external commands, builtins, groups and their final statuses
true && echo a || echo b
false && echo c || echo d
ls missing 2>/dev/null || ls . >/dev/null && echo e
grep -q x /dev/null || { echo f; false; } || echo g
[ -d . ] && [ -f nope ] || echo h
mkdir made && cd made && touch inside && cd ..
ls made
false || false || echo "status-before $?"
true && (exit 3) || echo "caught $?"
cmp /dev/null /dev/null && echo same
