# covers: -v as a flag (bash's verbose mode: input lines echoed to stderr as read), not hs's own -v
# flags: -v
echo "flags: $-"
ls -d . | wc -l
f() { echo in-f; }
f
