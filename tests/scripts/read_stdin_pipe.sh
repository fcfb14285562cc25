# covers: stdin as a pipe shared by read builtins and a child bash, in order
# stdin-pipe: yes
# stdin: one
# stdin: two
# stdin: three
# stdin: four
read -r first; echo "read: $first"
bash -c 'read -r l; echo "child read: $l"'
read -r third; echo "read: $third"
cat | tr a-z A-Z
