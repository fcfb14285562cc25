# covers: $?, $_ and PIPESTATUS as seen by the words of the next external command (the gate must not change them)
(exit 3); /bin/echo "status $?"
echo last-word; /bin/echo "underscore $_"
false | true | (exit 5); /bin/echo "pipestatus ${PIPESTATUS[*]}"
/bin/echo "lineno $LINENO"
ls missing 2>/dev/null
/bin/echo "after failed ls: $?"
x=$(exit 4) ; /bin/echo "assignment status $?"
