# covers: units that pipe into script functions (speculated with the functions' definitions and every variable the script uses), an exported function called by a child bash (its body stays uninstrumented), an error inside a function, `caller` and `dirs` in pipelines (shell state a sandbox lacks)
SUFFIX=.out
pairs() {
    input=$1
    tmp=$(mktemp -d)
    cat > "$tmp/$input.words"
    tail -n +2 "$tmp/$input.words" > "$tmp/$input.next"
    paste "$tmp/$input.words" "$tmp/$input.next"
    rm -rf "$tmp"
}
export -f pairs
shout() { tr a-z A-Z; nosuch_command_in_function 2>/dev/null; echo "rc=$?"; }
mkdir -p out
for input in a b c d; do
    printf 'x y\nz w\nq\n' | tr ' ' '\n' | pairs $input | sort | uniq -c > out/$input$SUFFIX
done
cat out/*.out | wc -l
bash -c 'pairs child' < /dev/null | wc -l
echo hello | shout | cat
echo world | shout
SUFFIX=.txt
printf '1\n2\n' | pairs late | sort > out/late$SUFFIX
ls out
where() { for i in 1 2 3; do { sleep 0.02; caller 0; } | sed 's,.*/,,'; done; }
where
pushd /tmp >/dev/null; for i in 1 2; do { sleep 0.02; dirs; } | wc -w; done; popd >/dev/null
