# covers: set -u when an external command's word uses an unset variable: bash's message, line, exit status
set -u
/bin/echo "fine ${HOME:+home-set}"
ls -d . > /dev/null
/bin/echo "value: $MISSING_VAR"
echo never
