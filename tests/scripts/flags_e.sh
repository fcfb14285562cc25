# covers: -e given as a command-line flag (bash -e / hs -e)
# flags: -e
echo before
grep -q x /dev/null
echo after
