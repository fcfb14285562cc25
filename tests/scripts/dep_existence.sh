# covers: existence and non-existence checks by external commands (test, stat) around creation and deletion
/usr/bin/test -e f && echo present || echo absent
touch f
/usr/bin/test -e f && echo present || echo absent
stat -c '%s %a' f
/bin/echo data > f
chmod 640 f
stat -c '%s %a' f
rm f
stat f 2>&1 | sed 's/^stat: //'
ls -d f 2>/dev/null || echo gone
