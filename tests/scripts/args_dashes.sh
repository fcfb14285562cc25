# covers: script arguments that look like options (-e --help -- -x) are passed through untouched
# args: -e --help -- -x '-c' 'echo hi'
echo "$#"
printf '[%s]\n' "$@"
echo "flags: $-"
