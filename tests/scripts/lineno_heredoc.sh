# covers: LINENO and error-message line numbers after here-docs, multi-line strings and continuations
cat <<EOF
line $LINENO inside here-doc
EOF
echo "after heredoc $LINENO"
s="multi
line
string"
echo "after string $LINENO"
ls missing-a
if true
then
    ls missing-b
fi
f() {
    ls missing-c
}
f
echo "end $LINENO"
