# covers: read from the script's stdin (a file): read, read -r, read -a, read -n, then cat the rest
# stdin: first line
# stdin: two  fields here
# stdin: a b c
# stdin: xyz
# stdin: rest 1
# stdin: rest 2
read -r line; echo "line=[$line]"
read a b; echo "a=[$a] b=[$b]"
read -ra arr; echo "arr=${#arr[@]} ${arr[2]}"
read -n 2 two; echo "two=[$two]"
read -r tail; echo "tail=[$tail]"
cat
read -r x; echo "eof status $?"
