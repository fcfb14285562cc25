# covers: command -v, type, builtin, functions shadowing external commands, `command` bypassing them
ls() { echo "fake ls $*"; }
ls -l
command ls -d .
type -t ls; type -t cd; type -t if; type -t sed
command -v cd
unset -f ls
type -t ls
echo() { builtin echo "wrapped: $*"; }
echo hi
unset -f echo
hash -r
command -v nonexistent_cmd_q || echo "not found $?"
