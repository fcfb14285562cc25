# covers: -o pipefail given as a command-line flag
# flags: -o pipefail
false | true
echo "status $?"
true | true
echo "status $?"
ls missing 2>&1 | cat > /dev/null
exit $?
