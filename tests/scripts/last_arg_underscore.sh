# covers: $_ (last argument of the previous command) after builtins and external commands
echo first second
echo "underscore: $_"
ls -d . > /dev/null
echo "after ls: $_"
true one two three
echo "after true: $_"
: colon-arg
echo "$_"
