# covers: exec < file replacing stdin, read -u, while-read from an fd, exec of an external at the end
# setup: printf 'a 1\nb 2\nc 3\n' > input.txt
exec 4< input.txt
read -u 4 k v; echo "$k=$v"
while read -r k v <&4; do echo "loop $k=$v"; done
exec < input.txt
read -r line; echo "stdin line: $line"
cat
exec echo "exec replaced the shell"
echo never
