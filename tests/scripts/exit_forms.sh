# covers: exit inside a pipeline element and a subshell (shell continues), exit with no argument
echo a | exit 3
echo "after pipeline exit: $?"
(exit 4)
echo "after subshell exit: $?"
f() { ls missing 2>/dev/null; exit; }
f
echo never
