# covers: child killed by a signal (status 128+n), and the script itself ending by SIGTERM
{ bash -c 'kill -9 $$'; } 2>/dev/null; echo "child status $?"
sh -c 'kill -TERM $$'; echo "child status $?"
echo before-self-kill
kill -TERM $$
echo never
