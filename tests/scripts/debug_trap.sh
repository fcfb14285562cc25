# covers: trap DEBUG printing BASH_COMMAND before each command (the script's own commands only)
f() { echo "in f"; }
trap 'echo "debug: $BASH_COMMAND" >&2' DEBUG
echo one
ls -d . > /dev/null
f
trap - DEBUG
echo done
