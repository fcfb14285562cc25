# covers: a script containing raw non-UTF-8 bytes in strings, comments and a file name
# comment with éÿ bytes
v=$(printf "x")
echo "café $v" | od -An -tx1
touch "né.txt"
ls | od -An -tx1
