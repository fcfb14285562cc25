# covers: exit N in the middle of a script: the rest does not run, files written so far remain
echo one > progress.txt
echo started
if [[ -f progress.txt ]]; then
    echo two >> progress.txt
    exit 5
fi
echo three >> progress.txt
echo never
