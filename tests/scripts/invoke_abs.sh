# covers: script given by absolute path: $0 and error messages carry the absolute path
# args: 'a b'
[[ $0 == /*/invoke_abs.sh ]] && echo "absolute ok"
echo "$1"
missing_command_zz
exit 0
