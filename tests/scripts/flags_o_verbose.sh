# covers: -o verbose as a flag: the script's own lines are echoed on stderr (never hs's instrumentation)
# flags: -o verbose
echo "flags: $-"
ls -d .
for i in 1 2; do /bin/echo "$i"; done
