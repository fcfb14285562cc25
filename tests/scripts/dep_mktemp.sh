# covers: mktemp files and dirs in TMPDIR used between commands, removed before exit
t=$(mktemp)
/bin/echo "temp data" > "$t"
cat "$t"
d=$(mktemp -d)
cp "$t" "$d/copy"
ls "$d"
rm -r "$t" "$d"
[ -e "$t" ] || echo "cleaned"
