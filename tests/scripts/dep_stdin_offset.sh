# covers: external commands and builtins reading the script's stdin (a file) in turn, sharing its offset
# stdin: line 1
# stdin: line 2
# stdin: line 3
# stdin: line 4
# stdin: line 5
head -n 1
read -r x; /bin/echo "read: $x"
head -n 1
sed -n 1p
cat
