# covers: external commands written in unusual shapes: trailing comments, continuations, prefixes, fds, groups
ls -d . # a trailing comment; echo not-run
ls -d \
   . \
   ..
FOO=prefixed env | grep '^FOO='
{ ls -d .; }
case x in x) ls -d . ;; esac
if ls -d . >/dev/null; then /bin/echo cond-true; fi
while ! ls -d . >/dev/null; do :; done
exec {fd}> named-fd.txt
/bin/echo "to named fd" >&$fd
exec {fd}>&-
cat named-fd.txt
ls -d . 2>&1 >/dev/null | wc -l
command ls -d .
TIMEFORMAT=timed; time ls -d .
! ls missing 2>/dev/null
/bin/echo "bang status $?"
diff <(ls -d .) <(ls -d .) && /bin/echo same
ls -d . ; ls -d .. & wait
