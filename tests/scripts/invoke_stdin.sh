# covers: script fed on stdin (bash < script): read inside the script consumes the next script line
# invoke: stdin
echo start
read -r line
this line is data for read, not a command
echo "read got: $line"
echo "0 is ${0##*/}"
exit 6
