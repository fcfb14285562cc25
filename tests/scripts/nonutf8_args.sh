# covers: arguments with invalid UTF-8 bytes (\xff, \xe9) passed through to $@ and to external commands
# args: caf\xe9 \xff\xfe 'plain arg'
printf '%s\n' "$@" | od -An -tx1
touch "$1" "$2"
ls | od -c
printf '%s' "$1" | wc -c
