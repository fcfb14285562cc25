# covers: $? and PIPESTATUS after pipelines of external commands, builtins and functions
true | false | true
echo "${PIPESTATUS[@]} / $?"
false | true
echo "$? ${PIPESTATUS[*]}"
seq 5 | grep 3 | wc -l
echo "${PIPESTATUS[@]}"
f() { cat > /dev/null; return 3; }
echo x | f
echo "fn ${PIPESTATUS[@]}"
ls missing 2>/dev/null
echo "single ${PIPESTATUS[@]}"
(exit 2) | (exit 4)
st=("${PIPESTATUS[@]}")
echo "saved ${st[0]} ${st[1]}"
