# covers: ERR trap reporting BASH_COMMAND and LINENO for failing external commands, also in functions (set -E)
set -E
trap 'echo "ERR: [$BASH_COMMAND] line $LINENO status $?"' ERR
ls missing 2>/dev/null
f() {
    grep -q nothing /dev/null
}
f
bash -c 'exit 7'
echo end
