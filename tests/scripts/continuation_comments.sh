# covers: backslash line continuations, multi-line pipelines and lists, comments, ; separators, { } groups
echo one \
     two \
     three
seq 5 |
    grep -v 3 |
    tr '\n' ' '
echo
true &&
    echo after-and ||
    echo never
# a comment line
echo "# not a comment" # trailing comment
{ echo g1; echo g2; } ; { echo g3; }
x=1; y=2; echo $((x+y))
