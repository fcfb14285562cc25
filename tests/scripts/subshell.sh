# covers: ( ) subshells: variables and cd do not leak, exit status, nesting, BASH_SUBSHELL
x=outer
mkdir -p sub
( x=inner; cd sub; echo "in: $x $(basename "$PWD") $BASH_SUBSHELL"; touch made-in-sub )
echo "out: $x $(basename "$PWD") $BASH_SUBSHELL"
( exit 9 ); echo "status $?"
( ( echo nested $BASH_SUBSHELL ) )
(echo a; echo b) | wc -l
ls sub
out=$( (echo one; false); echo "rc=$?" )
echo "$out"
