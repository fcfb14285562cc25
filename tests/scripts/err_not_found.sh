# covers: command not found: bash's message on stderr, status 127, script exits 127 at the end
nosuch_cmd_abc arg
echo "status $?"
./not-here
echo "status $?"
touch notexec.sh
./notexec.sh
echo "status $?"
nosuch_again
