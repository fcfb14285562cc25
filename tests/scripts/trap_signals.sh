# covers: traps on USR1 and ERR, trap -p listing, resetting a trap
trap 'echo caught USR1' USR1
kill -USR1 $$
trap 'echo "ERR at $LINENO"' ERR
false
ls missing-too 2>/dev/null
trap -p USR1
trap - ERR
false
echo end
