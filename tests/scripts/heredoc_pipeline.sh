# covers: here-docs feeding pipelines, while-read loops and two here-docs on one command line
cat <<EOF | tr ' ' '\n' | sort | uniq -c
b a c a b a
EOF
while read -r a b; do
    echo "[$a|$b]"
done <<EOF
one two
three four five
EOF
paste /dev/fd/3 /dev/fd/4 3<<A 4<<B
x1
x2
A
y1
y2
B
cat <<EOF > out.txt && echo wrote
file content $((6 * 7))
EOF
cat out.txt
