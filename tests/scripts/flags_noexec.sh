# covers: -n (read and check syntax, run nothing): no output, no files, status 0 for a valid script
# flags: -n
echo "must not print"
touch must-not-exist
ls -d .
