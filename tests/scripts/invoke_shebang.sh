# covers: #!/usr/bin/env hs as the interpreter line of an executable script: $0, args, errors, exit status
# invoke: shebang
# args: one 'two words'
echo "0=${0##*/} #=$# 2=$2"
[[ $0 == /* ]] && echo "absolute \$0"
ls -d . | wc -l
missing_cmd_in_shebang_script
exit 5
