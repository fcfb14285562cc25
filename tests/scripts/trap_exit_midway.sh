# covers: trap EXIT when `exit N` is called mid-script, from a function; trap output to a file
cleanup() { echo "cleanup $1 rc=$?" | tee trap.log; }
trap 'cleanup done' EXIT
echo start
stop() { exit 4; }
stop
echo never
